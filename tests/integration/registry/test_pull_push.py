"""Pull and push through the image store and the overlay snapshotter, against the shoal
registry in process: layer unpacking, resumed and concurrent pulls, crafted layers."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from regtest import make_oci_layout
from shoal.errors import InvalidArgument, NotFound
from shoal.plugins.engine_api.http import Request, Response
from shoal.plugins.images.distribution import RegistryClient, RegistryError, TransportOptions
from shoal.plugins.images.store import LocalImageStore
from shoal.plugins.overlay.snapshotter import OverlaySnapshotter
from shoal.plugins.registry.server import RegistryServer
from shoal.plugins.registry.service import serve
from shoal.plugins.registry.storage import RegistryStorage

pytestmark = pytest.mark.root
FAST = TransportOptions(retries=3, backoff=0.01)


class RecordingServer(RegistryServer):
    """Counts blob downloads, and can cut the first ones short, slow them down, ignore
    ranges, or flip a byte of one blob."""

    def __init__(self, storage: RegistryStorage) -> None:
        super().__init__(storage)
        self.blob_gets: list[tuple[str, str]] = []
        self.cut_after: int | None = None
        self.delay = 0.0
        self.ignore_range = False
        self.corrupt: str | None = None

    async def _blob_get(self, request: Request, name: str, ref: str) -> Response:
        asked = request.headers.get("range", "")
        if self.ignore_range:
            request.headers.pop("range", None)
        response = await super()._blob_get(request, name, ref)
        if request.method == "GET":
            self.blob_gets.append((ref, asked))
            size = int(dict(response.headers)["Content-Length"])
            if (self.cut_after is not None and size > self.cut_after) or self.delay or ref == self.corrupt:
                response.body = self._shaped(response.body.chunks(), flip=ref == self.corrupt)
        return response

    async def _shaped(self, body: Any, flip: bool) -> AsyncIterator[bytes]:
        sent, limit = 0, self.cut_after
        self.cut_after = None
        try:
            async for chunk in body:
                if self.delay:
                    await trio.sleep(self.delay)
                if flip and len(chunk) > 1000:
                    chunk, flip = chunk[:1000] + bytes([chunk[1000] ^ 1]) + chunk[1001:], False
                if limit is not None and sent + len(chunk) > limit:
                    yield chunk[: limit - sent]
                    raise trio.BrokenResourceError("cut on purpose")
                sent += len(chunk)
                yield chunk
        finally:
            await body.aclose()


async def push_layout(client: RegistryClient, repository: str, layout: Path, tag: str = "latest") -> str:
    index = json.loads((layout / "index.json").read_text())
    raw = (layout / "blobs" / "sha256" / index["manifests"][0]["digest"].removeprefix("sha256:")).read_bytes()
    manifest = json.loads(raw)
    for blob in [manifest["config"], *manifest["layers"]]:
        path = layout / "blobs" / "sha256" / blob["digest"].removeprefix("sha256:")
        await client.upload_blob(repository, blob["digest"], path, path.stat().st_size)
    return await client.put_manifest(repository, tag, raw, manifest["mediaType"])


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[LocalImageStore, RecordingServer, str]]:
    snapshotter = await trio.to_thread.run_sync(OverlaySnapshotter.open, tmp_path / "overlay", "copy")
    store = await LocalImageStore.open(tmp_path / "images", snapshotter, transport=FAST)
    server = RecordingServer(RegistryStorage(tmp_path / "registry"))
    async with trio.open_nursery() as nursery:
        address = await nursery.start(serve, server, "127.0.0.1:0")
        yield store, server, address
        nursery.cancel_scope.cancel()


async def test_pull_unpacks_applies_config_and_push_mounts(env: Any, tmp_path: Path) -> None:
    store, server, address = env
    layout = make_oci_layout(tmp_path / "layout", extra={"hello.txt": b"hi\n"})
    async with await RegistryClient.connect(address, options=FAST) as client:
        digest = await push_layout(client, "lib/bb", tmp_path / "layout")
    messages: list[dict] = []
    record = await store.pull(f"{address}/lib/bb", report=messages.append)
    assert record.id == layout["config"] and record.digest == digest
    assert record.config["config"]["Cmd"] == ["sh"] and record.config["config"]["WorkingDir"] == "/tmp"
    assert f"{address}/lib/bb:latest" in record.names and f"{address}/lib/bb@{digest}" in record.names
    statuses = [m.get("status") for m in messages]
    assert "Pull complete" in statuses and statuses[-1].startswith("Status: Downloaded newer image")
    rootfs = Path(await store.snapshotter.prepare("c1", record.layers))
    assert (rootfs / "hello.txt").read_bytes() == b"hi\n" and (rootfs / "bin" / "busybox").is_file()
    await store.snapshotter.remove("c1")
    # Pulling again downloads nothing.
    server.blob_gets.clear()
    messages.clear()
    await store.pull(f"{address}/lib/bb", report=messages.append)
    assert server.blob_gets == [] and messages[-1]["status"].startswith("Status: Image is up to date")
    # Push under another name: the layers are mounted from lib/bb, nothing uploaded.
    await store.tag(f"{address}/lib/bb", f"{address}/other/copy:v2")
    pushed: list[dict] = []
    assert await store.push(f"{address}/other/copy:v2", report=pushed.append) == digest
    assert any(m.get("status") == "Mounted from lib/bb" for m in pushed)
    assert server.storage.manifest_digest("other/copy", "v2") == digest
    # History and prune.
    history = await store.history(record.id)
    assert [h["CreatedBy"] for h in history] == ["step 1", "step 0"]
    items, reclaimed = await store.prune(all_unused=True)
    assert {"Deleted": record.id} in items and reclaimed > 0 and store.blobs.digests() == set()


async def test_interrupted_pull_leaves_nothing_and_resumes(env: Any, tmp_path: Path) -> None:
    store, server, address = env
    make_oci_layout(tmp_path / "layout", padding=3 << 20)
    async with await RegistryClient.connect(address, options=FAST) as client:
        await push_layout(client, "big", tmp_path / "layout")
    server.delay = 0.3
    with trio.move_on_after(1.0):
        await store.pull(f"{address}/big")
    with pytest.raises(NotFound):
        await store.get(f"{address}/big")
    partial = [p.stat().st_size for p in store.partial_dir.iterdir()]
    assert partial and max(partial) > 0
    server.delay = 0.0
    server.blob_gets.clear()
    record = await store.pull(f"{address}/big")
    assert any(r.startswith("bytes=") and r != "bytes=0-" for _, r in server.blob_gets), server.blob_gets
    # A transfer that breaks mid-way is resumed within the same pull.
    await store.remove(record.id, force=True)
    server.blob_gets.clear()
    server.cut_after = 100_000
    await store.pull(f"{address}/big")
    ranges = [r for _, r in server.blob_gets if r]
    assert "bytes=100000-" in ranges, server.blob_gets


async def test_layers_are_unpacked_while_they_download(env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store, server, address = env
    make_oci_layout(tmp_path / "layout", padding=3 << 20)
    async with await RegistryClient.connect(address, options=FAST) as client:
        await push_layout(client, "follow", tmp_path / "layout")
    snapshotter, followed, from_blob = store.snapshotter, [], []
    growing, stored = snapshotter.apply_growing_layer, snapshotter.apply_layer

    async def follow(diff_ids: Any, source: str, sizes: Any, **kwargs: Any) -> str:
        followed.append(diff_ids[-1])
        return await growing(diff_ids, source, sizes, **kwargs)

    async def unpack_stored(diff_ids: Any, source: str) -> str:
        from_blob.append(diff_ids[-1])
        return await stored(diff_ids, source)

    monkeypatch.setattr(snapshotter, "apply_growing_layer", follow)
    monkeypatch.setattr(snapshotter, "apply_layer", unpack_stored)
    record = await store.pull(f"{address}/follow")
    assert sorted(followed) == sorted(record.layers) and from_blob == []  # both layers are over 64 KiB


async def test_a_download_that_starts_over_is_unpacked_from_the_stored_blob(env: Any, tmp_path: Path) -> None:
    store, server, address = env
    layout = make_oci_layout(tmp_path / "layout", padding=3 << 20)
    async with await RegistryClient.connect(address, options=FAST) as client:
        await push_layout(client, "restart", tmp_path / "layout")
    server.cut_after = 2_000_000  # only the padding layer is larger
    server.ignore_range = True  # the resume gets the whole blob again: the file starts over
    record = await store.pull(f"{address}/restart")
    assert [r for d, r in server.blob_gets if d == layout["layers"][1]] == ["", "bytes=2000000-"]
    rootfs = Path(await store.snapshotter.prepare("c1", record.layers))
    try:
        assert (rootfs / "padding.bin").stat().st_size == 3 << 20
    finally:
        await store.snapshotter.remove("c1")


async def test_a_layer_with_a_wrong_digest_leaves_nothing(env: Any, tmp_path: Path) -> None:
    store, server, address = env
    layout = make_oci_layout(tmp_path / "layout", padding=3 << 20)
    async with await RegistryClient.connect(address, options=FAST) as client:
        await push_layout(client, "bad", tmp_path / "layout")
    server.corrupt = layout["layers"][1]
    with pytest.raises(RegistryError, match="digest"):
        await store.pull(f"{address}/bad")
    with pytest.raises(NotFound):
        await store.get(f"{address}/bad")
    config = json.loads((tmp_path / "layout" / "blobs" / "sha256" / layout["config"].removeprefix("sha256:")).read_bytes())
    assert not await store.snapshotter.has_layer(config["rootfs"]["diff_ids"])
    assert not store.blobs.has(layout["layers"][1]) and not store.partial_path(layout["layers"][1]).exists()
    assert list(store.snapshotter.tmp_dir.iterdir()) == []


async def test_concurrent_pulls_download_each_layer_once(env: Any, tmp_path: Path) -> None:
    store, server, address = env
    layout = make_oci_layout(tmp_path / "layout", padding=1 << 20)
    async with await RegistryClient.connect(address, options=FAST) as client:
        await push_layout(client, "same", tmp_path / "layout")
    server.blob_gets.clear()
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(store.pull, f"{address}/same")
    downloaded = [d for d, _ in server.blob_gets]
    assert sorted(downloaded) == sorted([layout["config"], *layout["layers"]])


def crafted_layer(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = link
        data = b"pwned" if kind == tarfile.REGTYPE else b""
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("layer", [
    crafted_layer("../escape"),
    crafted_layer("/abs/../../escape"),
    crafted_layer("link", tarfile.LNKTYPE, "../../escape"),
], ids=["dotdot", "absolute", "hardlink-out"])  # fmt: skip
async def test_crafted_layers_never_write_outside(env: Any, tmp_path: Path, layer: bytes) -> None:
    store, server, address = env
    blob = gzip.compress(layer)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}).encode()  # fmt: skip
    layout = tmp_path / "evil"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    for data in (blob, config):
        (layout / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()).write_bytes(data)
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:" + hashlib.sha256(blob).hexdigest(), "size": len(blob)}]}).encode()  # fmt: skip
    (layout / "blobs" / "sha256" / hashlib.sha256(manifest).hexdigest()).write_bytes(manifest)
    (layout / "index.json").write_text(json.dumps({"manifests": [{"digest": "sha256:" + hashlib.sha256(manifest).hexdigest()}]}))
    async with await RegistryClient.connect(address, options=FAST) as client:
        await push_layout(client, "evil", layout)
    before = set(tmp_path.rglob("escape"))
    try:
        await store.pull(f"{address}/evil")
    except (InvalidArgument, RegistryError):
        with pytest.raises(NotFound):
            await store.get(f"{address}/evil")
    assert set(tmp_path.rglob("escape")) == before
    assert not (tmp_path.parent / "escape").exists() and not Path("/escape").exists() and not Path("/abs").exists()
