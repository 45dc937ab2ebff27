"""Docker image references: parsing and normalisation.

Grammar (as Docker and the OCI distribution spec use it)::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path-component ( "/" path-component )*
    domain     := host [ ":" port ]          host: DNS name, "localhost" or "[IPv6]"
    component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest     := "sha256:" 64 lowercase hex digits

Normalisation: a first component without ".", ":" and other than "localhost" is not a
domain, so the domain is ``docker.io`` (``index.docker.io`` is the same registry); a
one-component name on ``docker.io`` lives under ``library/``; without a digest the tag
defaults to ``latest``. ``busybox`` is therefore ``docker.io/library/busybox:latest``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shoal.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
DEFAULT_TAG = "latest"
_LEGACY_DOMAIN = "index.docker.io"
_OFFICIAL_PREFIX = "library/"
_MAX_NAME = 255

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*")
_DOMAIN = re.compile(
    r"(?:localhost|(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


@dataclass(frozen=True)
class Reference:
    """A normalised image reference; ``str()`` gives its canonical form."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """The fully qualified repository: "docker.io/library/busybox"."""
        return f"{self.domain}/{self.path}"

    def familiar(self) -> str:
        """The short form people type: "busybox:latest", "host:5000/app:1"."""
        name = self.repository
        if self.domain == DEFAULT_DOMAIN:
            name = self.path.removeprefix(_OFFICIAL_PREFIX)
        return name + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        """The same repository with another tag and no digest."""
        return Reference(self.domain, self.path, tag=tag)

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.repository + self._suffix()


def parse_reference(text: str) -> Reference:
    """Parse and normalise a reference; raises ``InvalidArgument`` naming a malformed one."""
    if not text:
        raise InvalidArgument("invalid reference format: the image name is empty")
    rest, digest = text, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise InvalidArgument(f"invalid reference format: {text!r} has a malformed digest {digest!r}")
    tag = None
    # A ":" after the last "/" starts the tag; earlier ones belong to a domain's port.
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        rest, tag = rest[:colon], rest[colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise InvalidArgument(f"invalid reference format: {text!r} has a malformed tag {tag!r}")
    domain, path = _split_domain(rest, text)
    for component in path.split("/"):
        if not _COMPONENT.fullmatch(component):
            if component.lower() != component and _COMPONENT.fullmatch(component.lower()):
                raise InvalidArgument(f"invalid reference format: repository name in {text!r} must be lowercase")
            raise InvalidArgument(f"invalid reference format: {text!r} has a malformed name component {component!r}")
    if len(domain) + 1 + len(path) > _MAX_NAME:
        raise InvalidArgument(f"invalid reference format: repository name in {text!r} is longer than {_MAX_NAME}")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def _split_domain(name: str, text: str) -> tuple[str, str]:
    first, sep, remainder = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if not _DOMAIN.fullmatch(first):
            raise InvalidArgument(f"invalid reference format: {text!r} has a malformed registry {first!r}")
        domain, path = first, remainder
    else:
        domain, path = DEFAULT_DOMAIN, name
    if not path:
        raise InvalidArgument(f"invalid reference format: {text!r} names no repository")
    if domain == _LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = _OFFICIAL_PREFIX + path
    return domain, path


def normalise(text: str) -> str:
    """The canonical string of a reference: "busybox" -> "docker.io/library/busybox:latest"."""
    return str(parse_reference(text))
