"""The OCI Distribution Spec v1.1 API over h11: blobs, uploads, manifests, tags, referrers.

Every answer carries ``Docker-Distribution-API-Version: registry/2.0``; errors are the
spec's ``{"errors": [{"code", "message", "detail"}]}`` with its codes and statuses.
Requests are matched by the path's suffix after the (slash-containing) repository name.
Blob bodies stream in large chunks; file work runs in worker threads. A blob going out
over a plain socket is sent with sendfile(2): the kernel copies the file to the socket, and
this process does no per-byte work (over TLS it is read and sent in chunks).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import h11
import trio

from shoal.errors import InvalidArgument, NotFound
from shoal.plugins.engine_api.http import HttpConnection, HttpError, Request, Response
from shoal.plugins.images.blobs import check_digest
from shoal.plugins.images.manifests import INDEX_TYPES, MAX_MANIFEST, Manifest, parse_manifest, select_platform

from .htpasswd import Htpasswd
from .storage import RegistryStorage, check_name, check_tag

log = logging.getLogger("shoal.plugins.registry")

_READ = 1 << 20
#: Most bytes one sendfile(2) call is asked for, so a slow client still lets others run.
_SENDFILE = 8 << 20
_BATCH = 4 << 20
_API_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
_ROUTES = [
    (re.compile(r"/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)"), "manifest"),
    (re.compile(r"/v2/(?P<name>.+)/blobs/uploads/(?P<ref>[^/]*)"), "upload"),
    (re.compile(r"/v2/(?P<name>.+)/blobs/(?P<ref>[^/]+)"), "blob"),
    (re.compile(r"/v2/(?P<name>.+)/tags/list"), "tags"),
    (re.compile(r"/v2/(?P<name>.+)/referrers/(?P<ref>[^/]+)"), "referrers"),
]
_STATUS = {
    "BLOB_UNKNOWN": 404, "BLOB_UPLOAD_INVALID": 400, "BLOB_UPLOAD_UNKNOWN": 404, "DIGEST_INVALID": 400,
    "MANIFEST_BLOB_UNKNOWN": 400, "MANIFEST_INVALID": 400, "MANIFEST_UNKNOWN": 404, "NAME_INVALID": 400,
    "NAME_UNKNOWN": 404, "SIZE_INVALID": 400, "UNAUTHORIZED": 401, "DENIED": 403, "UNSUPPORTED": 405,
    "RANGE_INVALID": 416, "TOOMANYREQUESTS": 429,
}  # fmt: skip


class RegistryError(Exception):
    """An error answered with a spec error code."""

    def __init__(self, code: str, message: str, status: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or _STATUS[code]
        self.detail = detail


@dataclass(frozen=True)
class FileRange:
    """A response body that is ``length`` bytes of a file from ``start``."""

    path: Path
    start: int
    length: int

    def __len__(self) -> int:
        # h11 counts a body's bytes with len(): this stands for the bytes sendfile sends.
        return self.length

    def chunks(self) -> AsyncIterator[bytes]:
        """The bytes, read in large chunks (for streams sendfile cannot write to)."""
        return _file_chunks(self.path, self.start, self.length)


def error_response(code: str, message: str, status: int, detail: Any = None) -> Response:
    """The spec's error body."""
    body = json.dumps({"errors": [{"code": code, "message": message, "detail": detail}]}).encode()
    return Response(status, body, "application/json")


class RegistryServer:
    """Answers Distribution API connections from a ``RegistryStorage``."""

    def __init__(self, storage: RegistryStorage, htpasswd: Htpasswd | None = None, realm: str = "shoal-registry",
                 delete_enabled: bool = True) -> None:  # fmt: skip
        self.storage = storage
        self.htpasswd = htpasswd
        self.realm = realm
        self.delete_enabled = delete_enabled
        self._authorized: set[bytes] = set()

    # ------------------------------------------------------------------ connections

    async def handle_connection(self, stream: trio.abc.Stream) -> None:
        """Serve requests on one connection until either side closes it."""
        conn = HttpConnection(stream)
        try:
            while True:
                event = await conn.next_event()
                if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                    break
                if not isinstance(event, h11.Request):
                    break
                request = Request(conn, event)
                response = await self._dispatch(request)
                if not request.body_done:
                    async for _ in request.chunks():
                        pass
                await self._send(conn, request, response)
                if conn.h11.our_state is not h11.DONE or conn.h11.their_state is not h11.DONE:
                    break
                conn.h11.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError, h11.RemoteProtocolError):
            pass
        finally:
            await trio.aclose_forcefully(stream)

    async def _send(self, conn: HttpConnection, request: Request, response: Response) -> None:
        headers = [_API_HEADER]
        if response.content_type:
            headers.append(("Content-Type", response.content_type))
        headers.extend(response.headers)
        if isinstance(response.body, bytes) and not any(k.lower() == "content-length" for k, _ in response.headers):
            headers.append(("Content-Length", str(len(response.body))))
        await conn.send(h11.Response(status_code=response.status, headers=headers))
        if request.method != "HEAD":
            if isinstance(response.body, bytes):
                if response.body:
                    await conn.send(h11.Data(data=response.body))
            elif isinstance(response.body, FileRange):
                await _send_file(conn, response.body)
            else:
                async with aclosing(response.body) as body:  # type: ignore[type-var]
                    async for chunk in body:
                        await conn.send(h11.Data(data=chunk))
        elif not isinstance(response.body, bytes):
            await response.body.aclose()  # type: ignore[attr-defined]
        await conn.send(h11.EndOfMessage())

    async def _dispatch(self, request: Request) -> Response:
        try:
            if self.htpasswd is not None and not await self._authenticated(request):
                response = error_response("UNAUTHORIZED", "authentication required", 401)
                response.headers.append(("WWW-Authenticate", f'Basic realm="{self.realm}"'))
                return response
            return await self._route(request)
        except RegistryError as exc:
            return error_response(exc.code, exc.message, exc.status, exc.detail)
        except HttpError as exc:
            code = "SIZE_INVALID" if exc.status == 413 else "UNSUPPORTED"
            return error_response(code, exc.message, exc.status)
        except Exception:
            log.exception("%s %s failed", request.method, request.target)
            return error_response("UNKNOWN", "internal error", 500)

    async def _authenticated(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        key = hashlib.sha256(value.strip().encode()).digest()
        if key in self._authorized:
            return True
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        assert self.htpasswd is not None
        if await trio.to_thread.run_sync(self.htpasswd.check, user, password):
            self._authorized.add(key)
            return True
        return False

    async def _route(self, request: Request) -> Response:
        path = request.raw_path
        if path in ("/v2", "/v2/"):
            return Response(200, b"{}", "application/json")
        if path == "/v2/_catalog":
            return await self._catalog(request)
        for regex, kind in _ROUTES:
            match = regex.fullmatch(path)
            if match is None:
                continue
            name = match.group("name")
            try:
                check_name(name)
            except InvalidArgument as exc:
                raise RegistryError("NAME_INVALID", str(exc)) from None
            handler = getattr(self, f"_{kind}_{request.method.lower()}", None)
            if handler is None and request.method == "HEAD":
                handler = getattr(self, f"_{kind}_get", None)
            if handler is None:
                raise RegistryError("UNSUPPORTED", f"{request.method} is not supported on {kind}s")
            return await handler(request, name, match.groupdict().get("ref") or "")
        raise RegistryError("UNSUPPORTED", f"no such endpoint {path}", 404)

    def _run(self, fn: Any, *args: Any) -> Any:
        return trio.to_thread.run_sync(fn, *args)

    # ------------------------------------------------------------------ listings

    async def _catalog(self, request: Request) -> Response:
        names = await self._run(self.storage.catalog)
        return self._paginated(request, "/v2/_catalog", "repositories", names)

    async def _tags_get(self, request: Request, name: str, _: str) -> Response:
        try:
            tags = await self._run(self.storage.tags, name)
        except NotFound:
            raise RegistryError("NAME_UNKNOWN", f"repository {name} is not known to this registry") from None
        return self._paginated(request, f"/v2/{name}/tags/list", "tags", tags, name=name)

    def _paginated(self, request: Request, path: str, key: str, items: list[str], **extra: str) -> Response:
        last = request.arg("last") or ""
        if last:
            items = [i for i in items if i > last]
        limit = request.int_arg("n")
        if limit is not None and limit < 0:
            raise RegistryError("UNSUPPORTED", "n must not be negative", 400)
        body: dict[str, Any] = {**extra, key: items}
        response = Response(200, b"", "application/json")
        if limit is not None and len(items) > limit:
            body[key] = items[:limit]
            if limit:
                query = urlencode({"n": limit, "last": items[limit - 1]})
                response.headers.append(("Link", f'<{path}?{query}>; rel="next"'))
        response.body = json.dumps(body).encode()
        return response

    # ------------------------------------------------------------------ blobs

    def _digest(self, text: str | None) -> str:
        try:
            return check_digest(text or "")
        except InvalidArgument as exc:
            raise RegistryError("DIGEST_INVALID", str(exc)) from None

    async def _blob_get(self, request: Request, name: str, ref: str) -> Response:
        digest = self._digest(ref)
        try:
            path = await self._run(self.storage.blob_in_repo, name, digest)
            size = path.stat().st_size
        except (NotFound, FileNotFoundError):
            raise RegistryError("BLOB_UNKNOWN", f"blob {digest} unknown to repository {name}") from None
        start, end, status = 0, size - 1, 200
        headers = [("Docker-Content-Digest", digest), ("Accept-Ranges", "bytes"), ("ETag", f'"{digest}"')]
        wanted = request.headers.get("range")
        if wanted:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", wanted.strip())
            if not match or (not match.group(1) and not match.group(2)):
                raise RegistryError("RANGE_INVALID", f"malformed range {wanted!r}")
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            else:
                start, end = max(size - int(match.group(2)), 0), size - 1
            if start > end or start >= size:
                response = error_response("RANGE_INVALID", f"range {wanted} outside the blob's {size} bytes", 416)
                response.headers.append(("Content-Range", f"bytes */{size}"))
                return response
            status = 206
            headers.append(("Content-Range", f"bytes {start}-{end}/{size}"))
        headers.append(("Content-Length", str(end - start + 1)))
        body: Any = b"" if request.method == "HEAD" else FileRange(path, start, end - start + 1)
        return Response(status, body, "application/octet-stream", headers)

    async def _blob_delete(self, request: Request, name: str, ref: str) -> Response:
        if not self.delete_enabled:
            raise RegistryError("UNSUPPORTED", "deletion is disabled on this registry")
        digest = self._digest(ref)
        try:
            await self._run(self.storage.unlink_blob, name, digest)
        except NotFound:
            raise RegistryError("BLOB_UNKNOWN", f"blob {digest} unknown to repository {name}") from None
        return Response(202, b"", headers=[("Docker-Content-Digest", digest)])

    # ------------------------------------------------------------------ uploads

    def _upload_headers(self, name: str, upload_id: str, size: int) -> list[tuple[str, str]]:
        return [
            ("Location", f"/v2/{name}/blobs/uploads/{upload_id}"),
            ("Range", f"0-{max(size - 1, 0)}"),
            ("Docker-Upload-UUID", upload_id),
        ]

    async def _upload_post(self, request: Request, name: str, ref: str) -> Response:
        if ref:
            raise RegistryError("UNSUPPORTED", "POST starts an upload; continue it with PATCH or PUT", 405)
        mount, source = request.arg("mount"), request.arg("from")
        if mount:
            digest = self._digest(mount)
            if source and await self._run(self.storage.mount_blob, name, digest, source):
                return Response(201, b"", headers=[("Location", f"/v2/{name}/blobs/{digest}"), ("Docker-Content-Digest", digest)])
            if not source and await self._run(self.storage.blobs.has, digest):
                # Automatic content discovery: a blob this registry holds may be linked.
                await self._run(self.storage.link_blob, name, digest)
                return Response(201, b"", headers=[("Location", f"/v2/{name}/blobs/{digest}"), ("Docker-Content-Digest", digest)])
        upload = await self._run(self.storage.start_upload, name)
        digest_arg = request.arg("digest")
        if digest_arg is not None:  # monolithic upload in the POST itself
            digest = self._digest(digest_arg)
            await self._receive(request, upload)
            return await self._finish(upload, digest)
        return Response(202, b"", headers=self._upload_headers(name, upload.id, 0))

    async def _open_upload(self, name: str, ref: str) -> Any:
        try:
            return await self._run(self.storage.upload, name, ref)
        except (NotFound, OSError):
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", f"upload {ref} unknown") from None

    async def _upload_get(self, request: Request, name: str, ref: str) -> Response:
        upload = await self._open_upload(name, ref)
        return Response(204, b"", headers=self._upload_headers(name, upload.id, upload.size))

    async def _upload_patch(self, request: Request, name: str, ref: str) -> Response:
        upload = await self._open_upload(name, ref)
        content_range = request.headers.get("content-range")
        if content_range:
            match = re.fullmatch(r"(?:bytes )?(\d+)-(\d+)", content_range.strip())
            if not match or int(match.group(1)) != upload.size:
                response = error_response("BLOB_UPLOAD_INVALID", f"chunk must start at offset {upload.size}", 416)
                response.headers.extend(self._upload_headers(name, upload.id, upload.size))
                return response
        await self._receive(request, upload)
        return Response(202, b"", headers=self._upload_headers(name, upload.id, upload.size))

    async def _upload_put(self, request: Request, name: str, ref: str) -> Response:
        upload = await self._open_upload(name, ref)
        digest = self._digest(request.arg("digest"))
        await self._receive(request, upload)
        return await self._finish(upload, digest)

    async def _upload_delete(self, request: Request, name: str, ref: str) -> Response:
        upload = await self._open_upload(name, ref)
        await self._run(self.storage.cancel_upload, upload)
        return Response(204, b"")

    async def _receive(self, request: Request, upload: Any) -> None:
        batch: list[bytes] = []
        pending = 0
        async with aclosing(request.chunks()) as chunks:
            async for chunk in chunks:
                batch.append(chunk)
                pending += len(chunk)
                if pending >= _BATCH:
                    await self._run(self.storage.append, upload, batch)
                    batch, pending = [], 0
        if batch:
            await self._run(self.storage.append, upload, batch)

    async def _finish(self, upload: Any, digest: str) -> Response:
        try:
            await self._run(self.storage.finish_upload, upload, digest)
        except InvalidArgument as exc:
            raise RegistryError("DIGEST_INVALID", str(exc)) from None
        return Response(201, b"", headers=[("Location", f"/v2/{upload.name}/blobs/{digest}"), ("Docker-Content-Digest", digest)])

    # ------------------------------------------------------------------ manifests

    async def _manifest_get(self, request: Request, name: str, ref: str) -> Response:
        try:
            digest = await self._run(self.storage.manifest_digest, name, ref)
            raw, media_type = await self._run(self.storage.manifest, name, digest)
        except (NotFound, FileNotFoundError):
            if not await self._run(self.storage.repository_exists, name):
                raise RegistryError("NAME_UNKNOWN", f"repository {name} is not known to this registry") from None
            raise RegistryError("MANIFEST_UNKNOWN", f"manifest {ref} unknown to repository {name}") from None
        except InvalidArgument as exc:
            raise RegistryError("MANIFEST_INVALID" if ref.startswith("sha256:") else "NAME_INVALID", str(exc)) from None
        accept = _accepted(request.headers.get("accept", ""))
        if accept and media_type in INDEX_TYPES and media_type not in accept and not ref.startswith("sha256:"):
            # A client that cannot read lists gets this registry's default platform.
            chosen = await self._default_platform(name, raw, media_type)
            if chosen is not None:
                digest, raw, media_type = chosen
        headers = [("Docker-Content-Digest", digest), ("ETag", f'"{digest}"'), ("Content-Length", str(len(raw)))]
        return Response(200, raw if request.method != "HEAD" else b"", media_type, headers)

    async def _default_platform(self, name: str, raw: bytes, media_type: str) -> tuple[str, bytes, str] | None:
        try:
            entry = select_platform(parse_manifest(raw, media_type).entries, {"os": "linux", "architecture": "amd64"})
        except InvalidArgument:
            return None
        if not await self._run(self.storage.has_manifest, name, entry.digest):
            return None
        chosen_raw, chosen_type = await self._run(self.storage.manifest, name, entry.digest)
        return entry.digest, chosen_raw, chosen_type

    async def _manifest_put(self, request: Request, name: str, ref: str) -> Response:
        tag: str | None = None
        if ref.startswith("sha256:"):
            expected = self._digest(ref)
        else:
            expected = None
            try:
                tag = check_tag(ref)
            except InvalidArgument as exc:
                raise RegistryError("MANIFEST_INVALID", str(exc)) from None
        raw = await _read_body(request, MAX_MANIFEST)
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        try:
            manifest = parse_manifest(raw, content_type)
        except InvalidArgument as exc:
            raise RegistryError("MANIFEST_INVALID", str(exc)) from None
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        if expected and expected != digest:
            raise RegistryError("DIGEST_INVALID", f"manifest hashes to {digest}, not {expected}")
        await self._check_references(name, manifest)
        descriptor = {"mediaType": manifest.media_type, "digest": digest, "size": len(raw)}
        if manifest.artifact_type:
            descriptor["artifactType"] = manifest.artifact_type
        if manifest.annotations:
            descriptor["annotations"] = dict(manifest.annotations)
        subject = manifest.subject.digest if manifest.subject else None
        await self._run(self.storage.put_manifest, name, raw, manifest.media_type, tag, subject, descriptor)
        headers = [("Location", f"/v2/{name}/manifests/{digest}"), ("Docker-Content-Digest", digest)]
        if subject:
            headers.append(("OCI-Subject", subject))
        return Response(201, b"", headers=headers)

    async def _check_references(self, name: str, manifest: Manifest) -> None:
        """Every blob (or, in a list, manifest) a manifest names must be in the repository."""
        if manifest.is_index:
            for entry in manifest.entries:
                if not await self._run(self.storage.has_manifest, name, entry.digest):
                    raise RegistryError("MANIFEST_BLOB_UNKNOWN", f"manifest {entry.digest} is not in repository {name}",
                                        detail={"digest": entry.digest})  # fmt: skip
            return
        assert manifest.config is not None
        for blob in [manifest.config, *manifest.layers]:
            if blob.urls:
                continue  # a foreign layer: fetched from its URLs, not from us
            try:
                path = await self._run(self.storage.blob_in_repo, name, blob.digest)
            except NotFound:
                raise RegistryError("MANIFEST_BLOB_UNKNOWN", f"blob {blob.digest} is not in repository {name}",
                                    detail={"digest": blob.digest}) from None  # fmt: skip
            if path.stat().st_size != blob.size:
                raise RegistryError("MANIFEST_INVALID", f"blob {blob.digest} is {path.stat().st_size} bytes, the manifest says {blob.size}")

    async def _manifest_delete(self, request: Request, name: str, ref: str) -> Response:
        if not self.delete_enabled:
            raise RegistryError("UNSUPPORTED", "deletion is disabled on this registry")
        try:
            await self._run(self.storage.delete_manifest, name, ref)
        except NotFound:
            raise RegistryError("MANIFEST_UNKNOWN", f"manifest {ref} unknown to repository {name}") from None
        except InvalidArgument as exc:
            raise RegistryError("MANIFEST_INVALID", str(exc)) from None
        return Response(202, b"")

    # ------------------------------------------------------------------ referrers

    async def _referrers_get(self, request: Request, name: str, ref: str) -> Response:
        digest = self._digest(ref)
        items = await self._run(self.storage.referrers, name, digest)
        headers = []
        wanted = request.arg("artifactType")
        if wanted:
            items = [i for i in items if i.get("artifactType") == wanted]
            headers.append(("OCI-Filters-Applied", "artifactType"))
        body = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": items}
        return Response(200, json.dumps(body).encode(), "application/vnd.oci.image.index.v1+json", headers)


async def _read_body(request: Request, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    async with aclosing(request.chunks()) as chunks:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise RegistryError("SIZE_INVALID", f"manifest larger than {limit} bytes", 413)
            parts.append(chunk)
    return b"".join(parts)


def _accepted(header: str) -> set[str]:
    return {part.split(";")[0].strip() for part in header.split(",") if part.strip()} - {"*/*"}


async def _send_file(conn: HttpConnection, body: FileRange) -> None:
    """Send a file range as the body: sendfile(2) on a plain socket, chunks over TLS."""
    stream = conn.stream
    if not isinstance(stream, trio.SocketStream):
        async with aclosing(body.chunks()) as chunks:
            async for chunk in chunks:
                await conn.send(h11.Data(data=chunk))
        return
    # h11 accounts for the body (its Content-Length) without touching the bytes.
    conn.h11.send_with_data_passthrough(h11.Data(data=body))
    fd = await trio.to_thread.run_sync(os.open, body.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        sock = stream.socket
        offset, end = body.start, body.start + body.length
        while offset < end:
            await trio.lowlevel.wait_writable(sock)
            try:
                sent = os.sendfile(sock.fileno(), fd, offset, min(end - offset, _SENDFILE))
            except BlockingIOError:
                continue
            if sent == 0:
                raise trio.BrokenResourceError(f"{body.path} ended {end - offset} bytes early")
            offset += sent
    except OSError as exc:
        raise trio.BrokenResourceError(f"sending {body.path}: {exc}") from exc
    finally:
        os.close(fd)


async def _file_chunks(path: Any, start: int, length: int) -> AsyncIterator[bytes]:
    f = await trio.open_file(path, "rb")
    try:
        await f.seek(start)
        remaining = length
        while remaining > 0:
            data = await f.read(min(_READ, remaining))
            if not data:
                break
            remaining -= len(data)
            yield data
    finally:
        with trio.CancelScope(shield=True):
            await f.aclose()
