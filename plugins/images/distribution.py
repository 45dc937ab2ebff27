"""An OCI Distribution client: manifests and blobs from and to one registry, over ``httpx``.

Authentication follows the registry's challenge: a request answered 401 with
``WWW-Authenticate: Bearer realm=...,service=...,scope=...`` gets a token from the realm
(anonymously, or with Basic credentials) and is retried with it; a ``Basic`` challenge is
answered with the credentials themselves. Tokens are cached per scope.

Transport: HTTPS verified against the system CAs plus the registry's own CA files
(``<certs_dir>/<host[:port]>/*.crt``, client certificates as ``*.cert`` + ``*.key``, as
Docker reads ``/etc/docker/certs.d``); plain HTTP for registries listed as insecure, which
first get a try over HTTPS without verification (Docker's behaviour), and for loopback
ones, which are tried over plain HTTP first and over HTTPS without verification next.

Idempotent requests are retried with exponential back-off on connection errors, 429 and
5xx; a blob download that breaks resumes with a ``Range`` request from the bytes it has.
Anything that is not the protocol (HTML, bad JSON, wrong digests) is a ``RegistryError``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin

import httpx
import trio

from shoal.errors import InvalidArgument, NotFound, ShoalError

from .credentials import ANONYMOUS, Credentials, parse_challenges
from .manifests import ACCEPT, MAX_MANIFEST, Manifest, parse_manifest
from .reference import DEFAULT_DOMAIN
from .transport import RegistryTransport

log = logging.getLogger("shoal.plugins.images.distribution")

_HUB_ENDPOINT = "registry-1.docker.io"
_CHUNK = 1 << 20
_WRITE_BATCH = 1 << 20
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

#: Called with the number of bytes transferred so far.
Progress = Callable[[int], None]


class RegistryError(ShoalError):
    """A registry refused a request or answered something that is not the protocol."""

    def __init__(self, message: str, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Unauthorized(RegistryError):
    """The registry wants credentials we do not have, or refused the ones we sent."""


@dataclass(frozen=True)
class TransportOptions:
    """How to reach registries: which may use plain HTTP, where CA files live, retries."""

    insecure_registries: Sequence[str] = ()
    certs_dir: str = "/etc/docker/certs.d"
    retries: int = 4
    backoff: float = 0.5
    timeout: float = 60.0
    chunk_size: int = 16 << 20


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0].strip("[]") if not host.startswith("[") or "]:" in host else host.strip("[]")
    if host.startswith("[") and "]:" in host:
        name = host[1 : host.index("]")]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_insecure(host: str, options: TransportOptions) -> bool:
    """Tell whether a registry may be reached over plain HTTP (listed, CIDR, or loopback)."""
    if _is_loopback(host):
        return True
    bare = host.rsplit(":", 1)[0].strip("[]")
    for entry in options.insecure_registries:
        if entry == host or entry == bare:
            return True
        try:
            if ipaddress.ip_address(bare) in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def ssl_context(host: str, options: TransportOptions, verify: bool = True) -> ssl.SSLContext:
    """System CAs plus the registry's own CA and client certificate files.

    Without verification no CA is loaded (the system's take tens of milliseconds).
    """
    if verify:
        context = ssl.create_default_context()
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    directory = Path(options.certs_dir) / host
    if directory.is_dir():
        for entry in sorted(directory.iterdir()):
            if entry.suffix == ".crt" and verify:
                context.load_verify_locations(cafile=str(entry))
            elif entry.suffix == ".cert":
                key = entry.with_suffix(".key")
                if not key.exists():
                    raise InvalidArgument(f"client certificate {entry} has no matching key {key.name}")
                context.load_cert_chain(str(entry), str(key))
    return context


def _error_of(response: httpx.Response, what: str) -> RegistryError:
    """The registry's own error (``{"errors": [{"code", "message"}]}``) or a plain one."""
    code, message = "", ""
    try:
        errors = response.json().get("errors") or []
        if errors and isinstance(errors[0], dict):
            code, message = str(errors[0].get("code", "")), str(errors[0].get("message", ""))
    except (ValueError, AttributeError, UnicodeDecodeError, httpx.ResponseNotRead):
        pass
    detail = f"{code}: {message}" if code else f"HTTP {response.status_code} {response.reason_phrase}"
    kind = Unauthorized if response.status_code in (401, 403) else RegistryError
    if response.status_code == 404:
        return NotFoundError(f"{what}: {detail}", response.status_code, code)
    return kind(f"{what}: {detail}", response.status_code, code)


class NotFoundError(RegistryError, NotFound):
    """The registry does not have the repository, manifest or blob."""


@dataclass
class _Auth:
    credentials: Credentials
    challenge: Any = None
    tokens: dict[str, str] = field(default_factory=dict)


class RegistryClient:
    """One registry host: an HTTP connection pool, its scheme and the auth state.

    Use ``async with RegistryClient.connect(host, credentials, options) as client``.
    ``repository`` arguments are paths on the registry ("library/busybox").
    """

    def __init__(self, host: str, base_url: str, http: httpx.AsyncClient, auth: _Auth, options: TransportOptions) -> None:
        self.host = host
        self.base_url = base_url
        self.http = http
        self._auth = auth
        self.options = options

    # ------------------------------------------------------------------ setup

    @classmethod
    async def connect(cls, host: str, credentials: Credentials = ANONYMOUS, options: TransportOptions | None = None) -> RegistryClient:
        """Open a client: choose HTTPS or HTTP by pinging ``/v2/``; close with ``aclose``."""
        options = options or TransportOptions()
        endpoint = _HUB_ENDPOINT if host == DEFAULT_DOMAIN else host
        insecure = is_insecure(host, options)
        timeout = httpx.Timeout(options.timeout, connect=min(options.timeout, 15.0))
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=16)
        attempts = [("https", True)]
        if insecure:
            # Loopback registries nearly always speak plain HTTP: try that first, and HTTPS
            # when nothing answers or an HTTPS server refuses the plain request (HTTP 400).
            attempts = [("http", False), ("https", False)] if _is_loopback(host) else [("https", False), ("http", False)]
        last: Exception | None = None
        for n, (scheme, verify) in enumerate(attempts):
            context = await trio.to_thread.run_sync(ssl_context, host, options, verify)
            http = httpx.AsyncClient(verify=context, timeout=timeout, limits=limits, follow_redirects=True,
                                     transport=RegistryTransport(context, limits), headers={"User-Agent": "shoal"})  # fmt: skip
            client = cls(host, f"{scheme}://{endpoint}", http, _Auth(credentials), options)
            try:
                await client.ping()
                return client
            except (httpx.TransportError, ssl.SSLError) as exc:
                last = exc
                await http.aclose()
            except RegistryError as exc:
                await http.aclose()
                if scheme != "http" or exc.status != 400 or n == len(attempts) - 1:
                    raise
                last = exc
            except BaseException:
                await http.aclose()
                raise
        raise RegistryError(f"cannot reach registry {host}: {_describe(last)}")

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def ping(self) -> None:
        """``GET /v2/``: learn the auth challenge; raises ``Unauthorized`` for refused credentials."""
        response = await self.http.get(f"{self.base_url}/v2/")
        if response.status_code == 401:
            challenges = parse_challenges(response.headers.get("www-authenticate", ""))
            self._auth.challenge = challenges[0] if challenges else None
            if self._auth.credentials and self._auth.challenge is not None:
                await self._authorization("")  # check credentials now: "login" relies on it
                checked = await self.http.get(f"{self.base_url}/v2/", headers=await self._headers(""))
                if checked.status_code in (401, 403):
                    raise Unauthorized(f"{self.host}: the registry refused the credentials", checked.status_code)
        elif response.status_code >= 400 and response.status_code != 404:
            raise _error_of(response, f"{self.host} /v2/")

    # ------------------------------------------------------------------ auth

    async def _authorization(self, scope: str) -> str | None:
        challenge = self._auth.challenge
        credentials = self._auth.credentials
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            if not credentials:
                return None
            return httpx.BasicAuth(credentials.username, credentials.password)._auth_header
        if challenge.scheme != "bearer":
            raise RegistryError(f"{self.host} asks for unsupported authentication scheme {challenge.scheme!r}")
        if credentials.registry_token:
            return f"Bearer {credentials.registry_token}"
        if scope in self._auth.tokens:
            return f"Bearer {self._auth.tokens[scope]}"
        realm = challenge.params.get("realm")
        if not realm:
            raise RegistryError(f"{self.host} sent a Bearer challenge without a realm")
        query: list[tuple[str, str]] = []
        if challenge.params.get("service"):
            query.append(("service", challenge.params["service"]))
        for item in scope.split(" "):
            if item:
                query.append(("scope", item))
        auth = httpx.BasicAuth(credentials.username, credentials.password) if credentials.username else None
        if credentials.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": credentials.identity_token, "client_id": "shoal",
                    "service": challenge.params.get("service", ""), "scope": scope}  # fmt: skip
            response = await self._retrying(lambda: self.http.post(realm, data=form))
        else:
            url = realm + ("&" if "?" in realm else "?") + urlencode(query) if query else realm
            response = await self._retrying(lambda: self.http.get(url, auth=auth) if auth else self.http.get(url))
        if response.status_code in (401, 403):
            raise Unauthorized(f"{self.host}: the token server refused the credentials", response.status_code)
        if response.status_code >= 400:
            raise _error_of(response, f"{self.host} token server")
        try:
            body = response.json()
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{self.host}: the token server answered without a token")
        self._auth.tokens[scope] = token
        return f"Bearer {token}"

    async def _headers(self, scope: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        value = await self._authorization(scope)
        if value:
            headers["Authorization"] = value
        return headers

    # ------------------------------------------------------------------ requests

    async def _retrying(self, send: Callable[[], Any]) -> httpx.Response:
        """Send (an idempotent request), retrying transport errors and 429/5xx with back-off."""
        delay = self.options.backoff
        for attempt in range(self.options.retries + 1):
            try:
                response = await send()
            except httpx.TransportError as exc:
                if attempt == self.options.retries:
                    raise RegistryError(f"{self.host}: {_describe(exc)}") from None
                log.info("%s: %s; retrying in %.1f s", self.host, _describe(exc), delay)
            else:
                if response.status_code not in _RETRY_STATUSES or attempt == self.options.retries:
                    return response
                await response.aclose()
                log.info("%s: HTTP %d; retrying in %.1f s", self.host, response.status_code, delay)
            await trio.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    async def request(self, method: str, path: str, scope: str, *, headers: Mapping[str, str] | None = None,
                      content: Any = None, idempotent: bool = True) -> httpx.Response:  # fmt: skip
        """Send a request with authorization, answering one 401 challenge; the body is read."""
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        for _ in range(2):
            hdrs = await self._headers(scope, headers)

            async def send() -> httpx.Response:
                return await self.http.request(method, url, headers=hdrs, content=content)

            response = await (self._retrying(send) if idempotent else self._once(send))
            if response.status_code != 401 or not self._learn_challenge(response, scope):
                return response
        return response

    async def _once(self, send: Callable[[], Any]) -> httpx.Response:
        try:
            return await send()
        except httpx.TransportError as exc:
            raise RegistryError(f"{self.host}: {_describe(exc)}") from None

    def _learn_challenge(self, response: httpx.Response, scope: str) -> bool:
        """Take a new challenge from a 401; True when a retry can succeed."""
        challenges = parse_challenges(response.headers.get("www-authenticate", ""))
        if not challenges:
            return False
        had = scope in self._auth.tokens or (self._auth.challenge is not None and self._auth.challenge.scheme == "basic")
        fresh = self._auth.challenge != challenges[0]
        self._auth.challenge = challenges[0]
        self._auth.tokens.pop(scope, None)
        return fresh or not had

    # ------------------------------------------------------------------ manifests

    async def get_manifest(self, repository: str, reference: str, scope: str = "") -> tuple[Manifest, str]:
        """Fetch a manifest by tag or digest; (the parsed manifest, its digest).

        A manifest fetched by digest must hash to it; one fetched by tag must match the
        ``Docker-Content-Digest`` the registry announces, when it announces one.
        """
        scope = scope or f"repository:{repository}:pull"
        response = await self.request("GET", f"/v2/{repository}/manifests/{reference}", scope, headers={"Accept": ACCEPT})
        if response.status_code != 200:
            raise _error_of(response, f"manifest {repository}:{reference}")
        raw = response.content
        if len(raw) > MAX_MANIFEST:
            raise RegistryError(f"manifest {repository}:{reference} is larger than {MAX_MANIFEST} bytes")
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        expected = reference if reference.startswith("sha256:") else response.headers.get("docker-content-digest", "")
        if expected.startswith("sha256:") and expected != digest:
            raise RegistryError(f"manifest {repository}:{reference} has digest {digest}, expected {expected}")
        try:
            manifest = parse_manifest(raw, response.headers.get("content-type", ""))
        except InvalidArgument as exc:
            raise RegistryError(f"{self.host} answered a bad manifest for {repository}:{reference}: {exc}") from None
        return manifest, digest

    async def has_manifest(self, repository: str, reference: str) -> str | None:
        """The digest of a manifest the registry has, or None."""
        response = await self.request("HEAD", f"/v2/{repository}/manifests/{reference}", f"repository:{repository}:pull",
                                      headers={"Accept": ACCEPT})  # fmt: skip
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _error_of(response, f"manifest {repository}:{reference}")
        return response.headers.get("docker-content-digest") or ""

    async def put_manifest(self, repository: str, reference: str, raw: bytes, media_type: str) -> str:
        """Upload a manifest under a tag or its digest; returns the digest the registry gives it."""
        scope = f"repository:{repository}:pull,push"
        response = await self.request("PUT", f"/v2/{repository}/manifests/{reference}", scope,
                                      headers={"Content-Type": media_type}, content=raw)  # fmt: skip
        if response.status_code not in (200, 201, 202):
            raise _error_of(response, f"push of manifest {repository}:{reference}")
        return response.headers.get("docker-content-digest") or "sha256:" + hashlib.sha256(raw).hexdigest()

    # ------------------------------------------------------------------ blobs

    async def blob_size(self, repository: str, digest: str, scope: str = "") -> int | None:
        """The size of a blob the registry has in ``repository``, or None."""
        response = await self.request("HEAD", f"/v2/{repository}/blobs/{digest}", scope or f"repository:{repository}:pull")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _error_of(response, f"blob {digest}")
        return int(response.headers.get("content-length") or 0)

    async def fetch_blob(self, repository: str, digest: str, destination: Path, progress: Progress | None = None,
                         restarted: Callable[[], None] | None = None) -> None:  # fmt: skip
        """Download a blob into ``destination``, appending to what it already holds.

        The file keeps whatever arrived when an attempt breaks, and the next attempt (in
        this call, or a later pull) asks only for the rest. ``progress`` gets the bytes
        the file holds, each time after they are flushed to it. A registry that ignores
        the range makes the download start over in a new file at the same path (a reader
        of the old one sees it unchanged), after a call to ``restarted``. Raises
        ``RegistryError`` when the bytes do not hash to ``digest`` (the file is then removed).
        """
        scope = f"repository:{repository}:pull"
        hasher = hashlib.sha256()
        have = await trio.to_thread.run_sync(_hash_existing, destination, hasher)
        if progress:
            progress(have)
        delay = self.options.backoff
        attempt = 0
        state = _Download(hasher, have)
        while True:
            try:
                await self._fetch_once(repository, digest, scope, destination, state, progress, restarted)
                break
            except (httpx.TransportError, _Retry) as exc:
                attempt += 1
                if attempt > self.options.retries:
                    raise RegistryError(f"download of {digest} from {self.host} failed: {_describe(exc)}") from None
                log.info("download of %s broke after %d bytes (%s); resuming in %.1f s", digest, state.have, _describe(exc), delay)
                await trio.sleep(delay)
                delay *= 2
        got = "sha256:" + state.hasher.hexdigest()
        if got != digest:
            destination.unlink(missing_ok=True)
            raise RegistryError(f"blob from {self.host} has digest {got}, expected {digest}")

    async def _fetch_once(self, repository: str, digest: str, scope: str, destination: Path, state: _Download,
                          progress: Progress | None, restarted: Callable[[], None] | None) -> None:  # fmt: skip
        url = f"{self.base_url}/v2/{repository}/blobs/{digest}"
        for _ in range(2):
            headers = await self._headers(scope, {"Range": f"bytes={state.have}-"} if state.have else None)
            async with self.http.stream("GET", url, headers=headers) as response:
                if response.status_code == 401 and self._learn_challenge(response, scope):
                    continue
                if response.status_code == 416 and state.have:
                    return  # we have it all already; the digest check decides
                if response.status_code in _RETRY_STATUSES:
                    raise _Retry(f"HTTP {response.status_code}")
                if response.status_code not in (200, 206):
                    await response.aread()
                    raise _error_of(response, f"blob {digest} of {repository}")
                if response.status_code == 200 and state.have:
                    state.restart()  # the registry ignored the range: start over
                    destination.unlink(missing_ok=True)
                    if restarted:
                        restarted()
                with open(destination, "ab" if state.have else "wb") as out:
                    batch: list[bytes] = []
                    try:
                        async for chunk in response.aiter_raw():
                            batch.append(chunk)
                            if sum(map(len, batch)) >= _WRITE_BATCH:
                                await trio.to_thread.run_sync(state.write, out, batch)
                                batch = []
                                if progress:
                                    progress(state.have)
                    finally:
                        # Keep what arrived, even from a broken transfer: the next try resumes after it.
                        if batch:
                            with trio.CancelScope(shield=True):
                                await trio.to_thread.run_sync(state.write, out, batch)
                if progress:
                    progress(state.have)
                return
        raise Unauthorized(f"{self.host}: not authorized to pull {repository}", 401)

    async def mount_blob(self, repository: str, digest: str, source: str) -> bool:
        """Ask the registry to link a blob from another repository; True if it did."""
        scope = f"repository:{repository}:pull,push repository:{source}:pull"
        query = urlencode({"mount": digest, "from": source})
        response = await self.request("POST", f"/v2/{repository}/blobs/uploads/?{query}", scope, idempotent=False)
        if response.status_code == 201:
            return True
        if response.status_code == 202:  # not mounted: cancel the upload it opened instead
            location = response.headers.get("location")
            if location:
                await self.request("DELETE", self._absolute(location), scope)
            return False
        if response.status_code in (401, 403, 404):
            return False
        raise _error_of(response, f"mount of {digest} from {source}")

    def _absolute(self, location: str) -> str:
        return urljoin(self.base_url + "/", location)

    async def upload_blob(self, repository: str, digest: str, path: Path, size: int, progress: Progress | None = None) -> None:
        """Upload a blob: one PUT for small ones, PATCH chunks then PUT for larger ones.

        A chunk that fails is re-sent from the offset the registry reports (``Range``
        header of the upload status), so a broken upload resumes rather than restarts.
        """
        scope = f"repository:{repository}:pull,push"
        response = await self.request("POST", f"/v2/{repository}/blobs/uploads/", scope, idempotent=False)
        if response.status_code != 202:
            raise _error_of(response, f"upload of {digest} to {repository}")
        location = self._absolute(response.headers.get("location") or "")
        if size <= self.options.chunk_size:
            data = await trio.to_thread.run_sync(path.read_bytes)
            sep = "&" if "?" in location else "?"
            response = await self.request("PUT", f"{location}{sep}{urlencode({'digest': digest})}", scope,
                                          headers={"Content-Type": "application/octet-stream"}, content=data)  # fmt: skip
            if response.status_code != 201:
                raise _error_of(response, f"upload of {digest} to {repository}")
            if progress:
                progress(size)
            return
        offset = 0
        attempts = 0
        while offset < size:
            length = min(self.options.chunk_size, size - offset)
            chunk = await trio.to_thread.run_sync(_read_range, path, offset, length)
            headers = {"Content-Type": "application/octet-stream", "Content-Range": f"{offset}-{offset + length - 1}",
                       "Content-Length": str(length)}  # fmt: skip
            try:
                response = await self.request("PATCH", location, scope, headers=headers, content=chunk, idempotent=False)
            except RegistryError:
                response = None
            if response is not None and response.status_code == 202:
                location = self._absolute(response.headers.get("location") or location)
                offset += length
                attempts = 0
                if progress:
                    progress(offset)
                continue
            attempts += 1
            if attempts > self.options.retries:
                raise _error_of(response, f"upload of {digest}") if response is not None else RegistryError(
                    f"upload of {digest} to {self.host} failed")
            await trio.sleep(self.options.backoff * 2 ** (attempts - 1))
            offset, location = await self._upload_status(location, scope, offset)
        sep = "&" if "?" in location else "?"
        response = await self.request("PUT", f"{location}{sep}{urlencode({'digest': digest})}", scope, idempotent=False)
        if response.status_code != 201:
            raise _error_of(response, f"upload of {digest} to {repository}")

    async def _upload_status(self, location: str, scope: str, offset: int) -> tuple[int, str]:
        """Where an upload stands: the next offset the registry expects, and its location."""
        response = await self.request("GET", location, scope)
        if response.status_code != 204:
            return offset, location
        received = response.headers.get("range", "")
        location = self._absolute(response.headers.get("location") or location)
        if "-" in received:
            return int(received.rsplit("-", 1)[1]) + 1, location
        return 0, location

    async def tags(self, repository: str) -> list[str]:
        """Every tag of a repository, following pagination links."""
        out: list[str] = []
        path = f"/v2/{repository}/tags/list"
        while path:
            response = await self.request("GET", path, f"repository:{repository}:pull")
            if response.status_code != 200:
                raise _error_of(response, f"tags of {repository}")
            try:
                out.extend(response.json().get("tags") or [])
            except (ValueError, AttributeError):
                raise RegistryError(f"{self.host} answered a malformed tag list") from None
            link = response.headers.get("link", "")
            path = link[link.find("<") + 1 : link.find(">")] if "rel=\"next\"" in link else ""
        return out


class _Retry(Exception):
    """A retryable answer in the middle of a download."""


def _hash_existing(path: Path, hasher: Any) -> int:
    try:
        with open(path, "rb") as f:
            size = 0
            while data := f.read(_CHUNK):
                hasher.update(data)
                size += len(data)
            return size
    except FileNotFoundError:
        return 0


class _Download:
    """A download's running hash and the bytes its file holds."""

    def __init__(self, hasher: Any, have: int) -> None:
        self.hasher = hasher
        self.have = have

    def restart(self) -> None:
        self.hasher = hashlib.sha256()
        self.have = 0

    def write(self, out: Any, batch: list[bytes]) -> None:
        """Hash and append chunks (blocking); flushed so that a resume sees them."""
        for chunk in batch:
            self.hasher.update(chunk)
            out.write(chunk)
            self.have += len(chunk)
        out.flush()


def _read_range(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "no answer"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
