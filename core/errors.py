"""Errors shared by the core and plugins.

Each error carries a message meant for a person: it names what is wrong (the TOML path, the
plugin, the object) and, where it helps, what was expected.
"""

from __future__ import annotations


class ShoalError(Exception):
    """Base of every error shoal raises on purpose."""


class Skip(ShoalError):
    """Raised by a plugin's probe or setup to skip itself on this host, with the reason.

    A skipped plugin is not an error unless it is listed in ``[load].required`` or another
    required plugin needs the slot it fills.
    """


class PluginError(ShoalError):
    """A plugin failed to load or start; the message names the plugin."""

    def __init__(self, plugin: str, message: str) -> None:
        super().__init__(f"plugin {plugin!r}: {message}")
        self.plugin = plugin


class NotFound(ShoalError):
    """The named object does not exist."""


class Conflict(ShoalError):
    """The request clashes with the current state: a name in use, a stale version."""


class InvalidArgument(ShoalError):
    """A request carries a value that can never be valid; the message names the field."""


class NotModified(ShoalError):
    """The request asked for a state the object is already in (HTTP 304 in the Engine API)."""


class Forbidden(ShoalError):
    """The request is understood but not allowed on this object (HTTP 403)."""


class Unavailable(ShoalError):
    """The service cannot answer now (no quorum, a peer unreachable): try again (HTTP 503)."""
