"""The local image store: import, OCI documents, names, lookups, removal, atomicity."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from shoal.errors import Conflict, InvalidArgument, NotFound
from shoal.plugins.images.pack import tar_directory
from shoal.plugins.images.store import LocalImageStore
from shoal.plugins.overlay.snapshotter import OverlaySnapshotter, chain_ids

pytestmark = pytest.mark.root

CONFIG = {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "WorkingDir": "/root", "Labels": {"a": "b"}}


@pytest.fixture
def snapshotter(mount_guard: Path) -> OverlaySnapshotter:
    return OverlaySnapshotter.open(mount_guard / "overlay", "overlay")


@pytest.fixture
async def store(mount_guard: Path, snapshotter: OverlaySnapshotter) -> LocalImageStore:
    return await LocalImageStore.open(mount_guard / "images", snapshotter, compression_level=1)


def tiny_dir(tmp: Path, name: str) -> Path:
    root = tmp / f"tiny-{name}"
    root.mkdir()
    (root / "name").write_text(name)
    return root


def leftovers(store: LocalImageStore) -> dict[str, list[str]]:
    return {
        "blobs": sorted(store.blobs.digests()),
        "ingest": os.listdir(store.blobs.ingest_dir),
        "layers": os.listdir(store.snapshotter.layers_dir),
        "tmp": os.listdir(store.snapshotter.tmp_dir),
    }


async def test_import_from_a_directory(store, busybox_dir, tmp_path) -> None:
    image = await store.import_rootfs(str(busybox_dir), "busybox", CONFIG, comment="Imported from dir")
    assert image.names == ("docker.io/library/busybox:latest",)
    config_bytes = store.blobs.read(image.id)
    assert image.id == "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    config = json.loads(config_bytes)
    assert config["config"] == CONFIG and image.config == config
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    assert config["history"][0]["comment"] == "Imported from dir"
    assert image.created == config["created"] and image.created.endswith("Z")
    manifest = json.loads(store.blobs.read(image.digest))
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"] == {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": image.id, "size": len(config_bytes)}
    (layer,) = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    tar = gzip.decompress(store.blobs.read(layer["digest"]))
    assert layer["size"] == store.blobs.size(layer["digest"])
    assert config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]}
    assert image.layers == tuple(config["rootfs"]["diff_ids"]) and image.size == len(tar)
    rootfs = await store.snapshotter.prepare("run", image.layers)
    out = subprocess.run(["chroot", rootfs, "/bin/echo", "hello"], capture_output=True, text=True)
    assert out.stdout == "hello\n"
    await store.snapshotter.remove("run")


async def test_tar_gzip_stream_and_directory_imports_agree(store, busybox_dir, tmp_path) -> None:
    plain = tmp_path / "rootfs.tar"
    with open(plain, "wb") as out:
        tar_directory(str(busybox_dir), out)
    gz = tmp_path / "rootfs.tar.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))

    async def stream() -> AsyncIterator[bytes]:
        data = gz.read_bytes()
        for start in range(0, len(data), 65536):
            yield data[start : start + 65536]
            await trio.lowlevel.checkpoint()

    images = [
        await store.import_rootfs(str(busybox_dir), "from:dir", {}),
        await store.import_rootfs(str(busybox_dir), "from:dir-again", {}),
        await store.import_rootfs(str(plain), "from:tar", {}),
        await store.import_rootfs(str(gz), "from:gzip", {}),
        await store.import_rootfs(stream(), None, {}),
    ]
    assert len({i.layers for i in images}) == 1
    manifests = [json.loads(store.blobs.read(i.digest)) for i in images]
    assert len({m["layers"][0]["digest"] for m in manifests}) == 1  # deterministic tar and gzip
    assert images[-1].names == ()
    assert len(os.listdir(store.snapshotter.layers_dir)) == 1
    assert os.listdir(store.blobs.ingest_dir) == []


async def test_lookups(store, tmp_path) -> None:
    image = await store.import_rootfs(str(tiny_dir(tmp_path, "a")), "host:5000/team/app:1.0", {})
    hex_id = image.id.removeprefix("sha256:")
    for reference in ("host:5000/team/app:1.0", image.id, hex_id, hex_id[:12], "sha256:" + hex_id[:8]):
        assert (await store.get(reference)).id == image.id, reference
    with pytest.raises(NotFound, match="No such image: host:5000/team/app:latest"):
        await store.get("host:5000/team/app")
    with pytest.raises(NotFound, match="No such image: busybox:latest"):
        await store.get("busybox")
    with pytest.raises(InvalidArgument, match="invalid reference format"):
        await store.get("UPPER/case")
    await store.tag(image.id, "busybox:x")
    other = await store.import_rootfs(str(tiny_dir(tmp_path, "b")), "other", {})
    digest_ref = f"busybox@{image.digest}"
    assert (await store.get(digest_ref)).id == image.id
    with pytest.raises(NotFound):
        await store.get(f"other@{image.digest}")
    assert [i.id for i in await store.list()] == [other.id, image.id]


async def test_ambiguous_id_prefix_is_an_error(store, tmp_path) -> None:
    ids = [(await store.import_rootfs(str(tiny_dir(tmp_path, str(n))), None, {})).id for n in range(17)]
    first = [i[7] for i in ids]
    shared = next(c for c in first if first.count(c) > 1)  # 17 ids, 16 hex digits
    with pytest.raises(InvalidArgument, match="ambiguous"):
        await store.get(shared)


async def test_tag_and_remove(store, tmp_path) -> None:
    image = await store.import_rootfs(str(tiny_dir(tmp_path, "a")), "app:1", {})
    await store.tag("app:1", "app:2")
    await store.tag("app:1", "localhost:5000/app")
    assert (await store.get("app:2")).names == (
        "docker.io/library/app:1", "docker.io/library/app:2", "localhost:5000/app:latest",
    )  # fmt: skip
    with pytest.raises(InvalidArgument, match="digest"):
        await store.tag("app:1", f"app@{image.digest}")
    assert await store.remove("app:2") == [{"Untagged": "app:2"}]
    with pytest.raises(Conflict, match="referenced in multiple repositories"):
        await store.remove(image.id)
    assert await store.remove("localhost:5000/app") == [{"Untagged": "localhost:5000/app:latest"}]
    with pytest.raises(Conflict, match="container abcdef012345 is using"):
        await store.remove("app:1", in_use={image.id: "abcdef0123456789"})
    layer_dir = store.snapshotter.layer_dir(chain_ids(image.layers)[-1])
    assert layer_dir.exists()
    result = await store.remove("app:1")
    assert result == [{"Untagged": "app:1"}, {"Deleted": image.id}, {"Deleted": chain_ids(image.layers)[-1]}]
    assert not layer_dir.exists()
    assert leftovers(store) == {"blobs": [], "ingest": [], "layers": [], "tmp": []}
    with pytest.raises(NotFound):
        await store.get(image.id)


async def test_a_tag_moves_and_the_old_image_stays_dangling(store, tmp_path) -> None:
    old = await store.import_rootfs(str(tiny_dir(tmp_path, "old")), "app", {})
    new = await store.import_rootfs(str(tiny_dir(tmp_path, "new")), "app", {})
    assert (await store.get("app")).id == new.id
    assert (await store.get(old.id)).names == ()
    with pytest.raises(Conflict, match="being used by container"):
        await store.remove(old.id, in_use={old.id: "c" * 64})
    assert await store.remove(old.id, force=True, in_use={old.id: "c" * 64}) == [
        {"Deleted": old.id}, {"Deleted": chain_ids(old.layers)[-1]},
    ]  # fmt: skip


async def test_forced_removal_keeps_layers_a_container_uses(store, tmp_path) -> None:
    image = await store.import_rootfs(str(tiny_dir(tmp_path, "a")), "app", {})
    rootfs = await store.snapshotter.prepare("user", image.layers)
    await store.tag("app", "app:other")
    result = await store.remove(image.id, force=True, in_use={image.id: "user"})
    assert {"Deleted": image.id} in result and len(result) == 3
    assert Path(rootfs, "name").read_text() == "a"
    await store.snapshotter.remove("user")
    assert await store.gc() == [chain_ids(image.layers)[-1]]


async def test_interrupted_stream_leaves_no_half_image(store) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"\x1f\x8b" + os.urandom(1000)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.import_rootfs(broken(), "half", {})
    with pytest.raises(InvalidArgument, match="corrupt or truncated"):
        await store.import_rootfs(_chunks(gzip.compress(os.urandom(10000))[:5000]), "half", {})
    with pytest.raises(InvalidArgument, match="not a valid tar"):
        await store.import_rootfs(_chunks(b"definitely not a tar" * 100), "half", {})
    assert await store.list() == []
    assert leftovers(store) == {"blobs": [], "ingest": [], "layers": [], "tmp": []}


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def test_cancelled_import_leaves_no_half_image(store, busybox_dir, monkeypatch) -> None:
    original = store.snapshotter.apply_layer

    async def apply_then_cancel(*args: object) -> str:
        chain = await original(*args)
        scope.cancel()
        await trio.lowlevel.checkpoint()
        return chain

    monkeypatch.setattr(store.snapshotter, "apply_layer", apply_then_cancel)
    with trio.CancelScope() as scope:
        await store.import_rootfs(str(busybox_dir), "half", {})
    assert scope.cancelled_caught
    assert await store.list() == []
    assert len(os.listdir(store.snapshotter.layers_dir)) == 1  # unpacked, never referenced
    await store.gc()
    assert leftovers(store) == {"blobs": [], "ingest": [], "layers": [], "tmp": []}


async def test_bad_import_arguments(store, tmp_path) -> None:
    with pytest.raises(InvalidArgument, match="unknown image config field"):
        await store.import_rootfs(str(tiny_dir(tmp_path, "a")), "x", {"Cmmd": ["sh"]})
    with pytest.raises(InvalidArgument, match="digest reference"):
        await store.import_rootfs(str(tiny_dir(tmp_path, "b")), "x@sha256:" + "a" * 64, {})
    with pytest.raises(InvalidArgument, match="does not exist"):
        await store.import_rootfs(str(tmp_path / "missing.tar"), "x", {})
    with pytest.raises(InvalidArgument, match="invalid reference format"):
        await store.import_rootfs(str(tiny_dir(tmp_path, "c")), "Bad:Name:", {})
    assert await store.list() == []


async def test_history(store, tmp_path) -> None:
    image = await store.import_rootfs(str(tiny_dir(tmp_path, "a")), "app", {}, comment="Imported from -")
    (step,) = await store.history("app")
    assert step["Id"] == image.id and step["Tags"] == ["app:latest"]
    assert step["Comment"] == "Imported from -" and step["CreatedBy"] == "shoal import"
    assert step["Size"] == image.size and abs(step["Created"] - time.time()) < 60


async def test_reopened_store_sees_the_same_images(mounts_under, store, mount_guard, tmp_path) -> None:
    image = await store.import_rootfs(str(tiny_dir(tmp_path, "a")), "app", CONFIG)
    again = await LocalImageStore.open(mount_guard / "images", store.snapshotter)
    assert await again.get("app") == image
    assert mounts_under(mount_guard) == []
