"""Hooks: many implementations each, called synchronously through pluggy.

A plugin implements a hook with a function or method named like the spec and decorated with
``shoal.hookimpl``, in an object it registers from its setup (``ctx.add_hooks(obj)``).
Hooks do no I/O: a plugin that must react with I/O hands the work to its own service over a
memory channel. Hooks are ``firstresult`` only where one implementation decides.

Every spec is documented in one format, checked by a test: a summary, then ``Args:``,
``Returns:`` and ``Implementers:``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .events import Event
    from .kernel import Engine

PROJECT = "shoal"
hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def shoal_engine_ready(engine: Engine) -> None:
    """Tell plugins that every provider is set up and every service has started.

    Args:
        engine: the running engine.
    Returns:
        Nothing.
    Implementers:
        Any plugin that acts once the whole engine is up (announce, register, log).
    """


@hookspec
def shoal_engine_stopping(engine: Engine) -> None:
    """Tell plugins the engine is about to cancel its services and close its providers.

    Args:
        engine: the engine being stopped.
    Returns:
        Nothing.
    Implementers:
        Any plugin that must note the shutdown (flush, deregister) before it happens.
    """


@hookspec
def shoal_event(event: Event) -> None:
    """Observe each event published on the engine's event stream.

    Args:
        event: the event (container, image, network, service, node...).
    Returns:
        Nothing; an exception is logged, never passed to the publisher.
    Implementers:
        Auditing, metrics and notification plugins.
    """


@hookspec
def shoal_container_create(spec: dict[str, Any]) -> None:
    """Validate or adjust a container's create request before anything is made.

    Args:
        spec: the Docker-style create body (Image, Cmd, Env, HostConfig...), already merged
            with defaults; implementations may change it in place.
    Returns:
        Nothing; raise ``shoal.errors.InvalidArgument`` to refuse the request, with a
        message naming the field.
    Implementers:
        Policy plugins (allowed images, required labels, forced limits).
    """


@hookspec
def shoal_service_create(spec: dict[str, Any]) -> None:
    """Validate or adjust a swarm service spec before it is stored.

    Args:
        spec: the Docker-style service spec; implementations may change it in place.
    Returns:
        Nothing; raise ``shoal.errors.InvalidArgument`` to refuse it.
    Implementers:
        Policy plugins for swarm managers.
    """


@hookspec
def shoal_api_routes(routes: Any) -> None:
    """Contribute HTTP endpoints to the Docker-compatible Engine API frontend.

    Args:
        routes: the frontend's route table; call ``routes.add(method, pattern, handler)``.
    Returns:
        Nothing.
    Implementers:
        Plugins that serve part of the Engine API (swarm services, distribution, plugins of
        third parties adding their own endpoints).
    """


@hookspec(firstresult=True)
def shoal_resolve_registry(reference: str) -> str | None:
    """Decide which registry host serves an image reference (mirrors, rewrites).

    Args:
        reference: a normalised image reference ("docker.io/library/busybox:latest").
    Returns:
        The registry host to contact instead of the reference's own, or None to leave the
        decision to the next implementation (and finally the reference itself).
    Implementers:
        Mirror and pull-through plugins; the first non-None answer wins.
    """
