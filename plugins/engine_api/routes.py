"""The route table: (method, path pattern) -> handler, and the ``/v1.NN`` version prefix.

Other plugins add endpoints through the ``shoal_api_routes`` hook::

    @hookimpl
    def shoal_api_routes(routes):
        routes.add("GET", "/services/{id}", get_service)

A handler is ``async def handler(request: Request) -> Response | Hijack`` (see
``shoal.plugins.engine_api.http``): ``request.params`` holds the pattern's placeholders,
``request.query`` the query string, ``await request.json()`` the body; raising
``NotFound``/``Conflict``/``InvalidArgument`` (or ``HttpError``) answers with Docker's error
body and status.

A pattern is a path with ``{name}`` placeholders matching one path segment, or
``{name:path}`` matching the rest of the path, slashes included (image names).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .http import Handler, HttpError

#: The API version this frontend speaks, and the oldest one it accepts.
API_VERSION = "1.50"
MIN_API_VERSION = "1.24"

_PLACEHOLDER = re.compile(r"\{(\w+)(:path)?\}")
_VERSION_PREFIX = re.compile(r"^/v(\d+)\.(\d+)(?=/)")
_METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}


def _parse_version(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


@dataclass(frozen=True)
class Route:
    """One endpoint."""

    method: str
    pattern: str
    regex: re.Pattern[str]
    handler: Handler


def _compile(pattern: str) -> re.Pattern[str]:
    if not pattern.startswith("/"):
        raise ValueError(f"route pattern {pattern!r} must start with '/'")
    out, pos = [], 0
    for m in _PLACEHOLDER.finditer(pattern):
        out.append(re.escape(pattern[pos : m.start()]))
        out.append(f"(?P<{m.group(1)}>.+)" if m.group(2) else f"(?P<{m.group(1)}>[^/]+)")
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("".join(out) + "/?")


class RouteTable:
    """Every endpoint the frontend serves; the first matching route added wins."""

    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Serve ``method`` requests whose path (without version prefix) matches ``pattern``."""
        method = method.upper()
        if method not in _METHODS:
            raise ValueError(f"unknown HTTP method {method!r} for route {pattern!r}")
        for route in self._routes:
            if route.method == method and route.pattern == pattern:
                raise ValueError(f"route {method} {pattern} is already served")
        self._routes.append(Route(method, pattern, _compile(pattern), handler))

    def __len__(self) -> int:
        return len(self._routes)

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """The handler and placeholder values for a request; ``HttpError`` 404 or 405."""
        allowed: set[str] = set()
        head_fallback: tuple[Handler, dict[str, str]] | None = None
        for route in self._routes:
            m = route.regex.fullmatch(path)
            if m is None:
                continue
            if route.method == method:
                return route.handler, m.groupdict()
            # HEAD is served by the GET handler (without its body) unless a HEAD route exists.
            if method == "HEAD" and route.method == "GET" and head_fallback is None:
                head_fallback = route.handler, m.groupdict()
            allowed.add(route.method)
        if head_fallback is not None:
            return head_fallback
        if allowed:
            raise HttpError(405, f"method {method} not allowed on {path}; allowed: {', '.join(sorted(allowed))}")
        raise HttpError(404, "page not found")


def split_version(path: str) -> tuple[str | None, str]:
    """Split ``/v1.45/containers/json`` into ("1.45", "/containers/json").

    A version outside ``MIN_API_VERSION``..``API_VERSION`` is a 400 with Docker's message.
    """
    m = _VERSION_PREFIX.match(path)
    if m is None:
        if re.match(r"^/v[^/]*\d[^/]*/", path):
            raise HttpError(400, f"invalid API version in path {path!r}")
        return None, path
    version = f"{int(m.group(1))}.{int(m.group(2))}"
    wanted = _parse_version(version)
    if wanted > _parse_version(API_VERSION):
        raise HttpError(400, f"client version {version} is too new. Maximum supported API version is {API_VERSION}")
    if wanted < _parse_version(MIN_API_VERSION):
        raise HttpError(
            400,
            f"client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, "
            "please upgrade your client to a newer version",
        )
    return version, path[m.end() :]
