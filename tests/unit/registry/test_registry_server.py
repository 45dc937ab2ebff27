"""The registry server and the distribution client against each other, in process."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from shoal.plugins.images.credentials import Credentials
from shoal.plugins.images.distribution import RegistryClient, RegistryError, TransportOptions, Unauthorized
from shoal.plugins.registry.htpasswd import Htpasswd
from shoal.plugins.registry.server import RegistryServer
from shoal.plugins.registry.service import serve
from shoal.plugins.registry.storage import RegistryStorage

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
FAST = TransportOptions(retries=1, backoff=0.01, chunk_size=64 * 1024)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def start(nursery: trio.Nursery, tmp_path: Path, htpasswd: Htpasswd | None = None) -> tuple[str, RegistryStorage]:
    storage = RegistryStorage(tmp_path / "registry")
    server = RegistryServer(storage, htpasswd)
    address = await nursery.start(serve, server, "127.0.0.1:0")
    return address, storage


def manifest_for(config: bytes, layers: list[bytes]) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest_of(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest_of(l), "size": len(l)} for l in layers],
    }).encode()  # fmt: skip


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[tuple[str, RegistryStorage]]:
    async with trio.open_nursery() as nursery:
        yield await start(nursery, tmp_path)
        nursery.cancel_scope.cancel()


async def test_push_and_pull_blobs_and_manifests(registry: tuple[str, RegistryStorage], tmp_path: Path) -> None:
    address, storage = registry
    big, config = bytes(range(256)) * 1000, b'{"rootfs": {"diff_ids": []}}'
    source = tmp_path / "big"
    source.write_bytes(big)
    (tmp_path / "config").write_bytes(config)
    client = await RegistryClient.connect(address, options=FAST)
    async with client:
        await client.upload_blob("a/b", digest_of(big), source, len(big))  # chunked: 4 PATCHes
        await client.upload_blob("a/b", digest_of(config), tmp_path / "config", len(config))
        assert await client.blob_size("a/b", digest_of(big)) == len(big)
        raw = manifest_for(config, [big])
        assert await client.put_manifest("a/b", "v1", raw, OCI_MANIFEST) == digest_of(raw)
        manifest, digest = await client.get_manifest("a/b", "v1")
        assert digest == digest_of(raw) and manifest.raw == raw
        # Resume: a partial file is completed with a Range request.
        partial = tmp_path / "partial"
        partial.write_bytes(big[:1000])
        seen = []
        await client.fetch_blob("a/b", digest_of(big), partial, seen.append)
        assert partial.read_bytes() == big and seen[0] == 1000
        # Cross-repository mount, and skipping a blob the repository lacks.
        assert await client.mount_blob("c/d", digest_of(big), "a/b")
        assert not await client.mount_blob("c/d", digest_of(b"nope"), "a/b")
        assert await client.tags("a/b") == ["v1"]
    async with httpx.AsyncClient(base_url=f"http://{address}") as http:
        r = await http.get("/v2/_catalog")
        assert r.json() == {"repositories": ["a/b"]}
        r = await http.get(f"/v2/a/b/blobs/{digest_of(big)}", headers={"Range": "bytes=10-19"})
        assert r.status_code == 206 and r.content == big[10:20] and r.headers["content-range"] == f"bytes 10-19/{len(big)}"
        r = await http.head(f"/v2/a/b/manifests/{digest_of(raw)}")
        assert r.status_code == 200 and r.headers["docker-content-digest"] == digest_of(raw) and r.content == b""
        assert r.headers["content-length"] == str(len(raw))


async def test_error_codes(registry: tuple[str, RegistryStorage]) -> None:
    address, storage = registry
    async with httpx.AsyncClient(base_url=f"http://{address}") as http:

        async def code(response: httpx.Response) -> tuple[int, str]:
            return response.status_code, response.json()["errors"][0]["code"]

        data = b"hello"
        # A blob whose bytes do not match its digest is refused and nothing is stored.
        r = await http.post(f"/v2/r/blobs/uploads/?digest={digest_of(b'other')}", content=data)
        assert await code(r) == (400, "DIGEST_INVALID")
        assert storage.blobs.digests() == set()
        assert await code(await http.get(f"/v2/r/blobs/{digest_of(data)}")) == (404, "BLOB_UNKNOWN")
        assert await code(await http.get("/v2/r/blobs/sha256:xyz")) == (400, "DIGEST_INVALID")
        assert await code(await http.get("/v2/r/manifests/latest")) == (404, "NAME_UNKNOWN")
        assert await code(await http.get("/v2/r/tags/list")) == (404, "NAME_UNKNOWN")
        assert await code(await http.get("/v2/Bad_Name/tags/list")) == (400, "NAME_INVALID")
        assert await code(await http.get("/v2/r/blobs/uploads/0123456789abcdef0123456789abcdef")) == (404, "BLOB_UPLOAD_UNKNOWN")
        # Manifests: missing blob, bad JSON, unknown media type, oversized.
        headers = {"Content-Type": OCI_MANIFEST}
        r = await http.put("/v2/r/manifests/v1", content=manifest_for(b"{}", [b"x"]), headers=headers)
        assert await code(r) == (400, "MANIFEST_BLOB_UNKNOWN")
        assert await code(await http.put("/v2/r/manifests/v1", content=b"{not json", headers=headers)) == (400, "MANIFEST_INVALID")
        odd = json.dumps({"schemaVersion": 2, "mediaType": "application/x-odd", "layers": []}).encode()
        assert await code(await http.put("/v2/r/manifests/v1", content=odd, headers=headers)) == (400, "MANIFEST_INVALID")
        huge = b'{"schemaVersion": 2, "x": "' + b"a" * (5 << 20) + b'"}'
        r = await http.put("/v2/r/manifests/v1", content=huge, headers=headers)
        assert r.status_code in (400, 413) and r.json()["errors"][0]["code"] in ("SIZE_INVALID", "MANIFEST_INVALID")
        r = await http.put(f"/v2/r/manifests/{digest_of(b'x')}", content=manifest_for(b"{}", []), headers=headers)
        assert await code(r) == (400, "DIGEST_INVALID")


async def test_chunked_upload_status_cancel_and_out_of_order(registry: tuple[str, RegistryStorage]) -> None:
    address, storage = registry
    async with httpx.AsyncClient(base_url=f"http://{address}") as http:
        r = await http.post("/v2/r/blobs/uploads/")
        assert r.status_code == 202
        location = r.headers["location"]
        r = await http.patch(location, content=b"abc", headers={"Content-Range": "0-2"})
        assert r.status_code == 202 and r.headers["range"] == "0-2"
        r = await http.patch(location, content=b"zzz", headers={"Content-Range": "10-12"})
        assert r.status_code == 416
        r = await http.get(location)
        assert r.status_code == 204 and r.headers["range"] == "0-2"
        r = await http.put(location, params={"digest": digest_of(b"abcdef")}, content=b"def")
        assert r.status_code == 201 and r.headers["docker-content-digest"] == digest_of(b"abcdef")
        r = await http.post("/v2/r/blobs/uploads/")
        location = r.headers["location"]
        assert (await http.delete(location)).status_code == 204
        assert (await http.get(location)).status_code == 404


async def test_tags_pagination_referrers_delete_and_gc(registry: tuple[str, RegistryStorage]) -> None:
    address, storage = registry
    config = b'{"rootfs": {"diff_ids": []}}'
    async with httpx.AsyncClient(base_url=f"http://{address}") as http:
        await http.post(f"/v2/r/blobs/uploads/?digest={digest_of(config)}", content=config)
        raw = manifest_for(config, [])
        for tag in ("a", "b", "c"):
            assert (await http.put(f"/v2/r/manifests/{tag}", content=raw, headers={"Content-Type": OCI_MANIFEST})).status_code == 201
        r = await http.get("/v2/r/tags/list", params={"n": 2})
        assert r.json()["tags"] == ["a", "b"] and 'rel="next"' in r.headers["link"]
        next_url = r.headers["link"].split(";")[0].strip("<>")
        assert (await http.get(next_url)).json()["tags"] == ["c"]
        # A manifest with a subject shows up in the referrers API.
        empty = b"{}"
        await http.post(f"/v2/r/blobs/uploads/?digest={digest_of(empty)}", content=empty)
        referrer = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x-sig",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest_of(empty), "size": 2},
            "layers": [], "subject": {"mediaType": OCI_MANIFEST, "digest": digest_of(raw), "size": len(raw)},
        }).encode()  # fmt: skip
        r = await http.put(f"/v2/r/manifests/{digest_of(referrer)}", content=referrer, headers={"Content-Type": OCI_MANIFEST})
        assert r.status_code == 201 and r.headers["oci-subject"] == digest_of(raw)
        r = await http.get(f"/v2/r/referrers/{digest_of(raw)}")
        assert [m["digest"] for m in r.json()["manifests"]] == [digest_of(referrer)]
        assert r.json()["manifests"][0]["artifactType"] == "application/x-sig"
        assert (await http.get(f"/v2/r/referrers/{digest_of(raw)}", params={"artifactType": "other"})).json()["manifests"] == []
        # Delete by digest drops every tag; gc then frees the config blob.
        assert (await http.delete(f"/v2/r/manifests/{digest_of(referrer)}")).status_code == 202
        assert (await http.delete(f"/v2/r/manifests/{digest_of(raw)}")).status_code == 202
        assert (await http.get("/v2/r/tags/list")).json()["tags"] == []
    deleted = await trio.to_thread.run_sync(lambda: storage.gc(grace=0, now=2**40))
    assert digest_of(config) in deleted and digest_of(raw) in deleted


async def test_htpasswd_basic_auth(tmp_path: Path) -> None:
    sha = "{SHA}" + base64.b64encode(hashlib.sha1(b"secret").digest()).decode()
    (tmp_path / "htpasswd").write_text(f"alice:{sha}\n")
    async with trio.open_nursery() as nursery:
        address, _ = await start(nursery, tmp_path, Htpasswd.load(tmp_path / "htpasswd"))
        async with httpx.AsyncClient(base_url=f"http://{address}") as http:
            r = await http.get("/v2/")
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
            assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
        with pytest.raises(Unauthorized):
            await RegistryClient.connect(address, Credentials("alice", "wrong"), FAST)
        client = await RegistryClient.connect(address, Credentials("alice", "secret"), FAST)
        async with client:
            assert await client.blob_size("r", digest_of(b"x")) is None
        nursery.cancel_scope.cancel()


async def test_garbage_answers_are_clean_errors(tmp_path: Path) -> None:
    """A server that answers HTML instead of the protocol gives a RegistryError, not a crash."""

    async def garbage(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        body = b"<html>nope</html>"
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, garbage, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        client = await RegistryClient.connect(f"127.0.0.1:{port}", options=FAST)
        async with client:
            with pytest.raises(RegistryError, match="bad manifest"):
                await client.get_manifest("r", "latest")
            with pytest.raises(RegistryError, match="digest"):
                await client.fetch_blob("r", digest_of(b"x"), tmp_path / "blob")
            assert not (tmp_path / "blob").exists()
        nursery.cancel_scope.cancel()
