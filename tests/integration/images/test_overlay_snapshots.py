"""Container root filesystems: overlay mounts over shared layers, and the copying driver."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from shoal.errors import InvalidArgument, NotFound
from shoal.plugins.overlay.snapshotter import OverlaySnapshotter, chain_ids

from layers_support import diff_id

pytestmark = pytest.mark.root



async def build(snap: OverlaySnapshotter, tmp: Path, layers: list[bytes]) -> list[str]:
    """Apply tar layers bottom first; return their diff ids."""
    ids: list[str] = []
    for number, data in enumerate(layers):
        source = tmp / f"stack-{number}-{diff_id(data)[7:15]}.tar"
        source.write_bytes(data)
        ids.append(diff_id(data))
        await snap.apply_layer(ids, str(source))
    return ids


@pytest.fixture(params=["overlay", "copy"])
def snapshotter(request, mount_guard: Path) -> OverlaySnapshotter:
    return OverlaySnapshotter.open(mount_guard / "overlay", request.param)


@pytest.fixture
def overlay(mount_guard: Path) -> OverlaySnapshotter:
    return OverlaySnapshotter.open(mount_guard / "overlay", "overlay")


@pytest.fixture
def base(tar_builder) -> bytes:
    return (
        tar_builder()
        .dir("a")
        .file("a/x", b"x1")
        .file("a/y", b"y1")
        .dir("b")
        .file("b/z", b"z1")
        .file("keep", b"k", mode=0o4750, uid=1000)
        .symlink("link", "/a/y")
        .bytes()
    )


async def test_files_visible_and_binaries_run(mounts_under, snapshotter, tmp_path, busybox_dir, base) -> None:
    from shoal.plugins.images.pack import tar_directory

    tar = tmp_path / "bb.tar"
    with open(tar, "wb") as out:
        tar_directory(str(busybox_dir), out)
    ids = [diff_id(tar.read_bytes())]
    await snapshotter.apply_layer(ids, str(tar))
    rootfs = await snapshotter.prepare("c1", ids)
    assert (Path(rootfs) / "etc" / "passwd").read_text().startswith("root:")
    assert stat.S_IMODE(os.stat(Path(rootfs) / "etc" / "suid").st_mode) == 0o4755
    assert os.getxattr(Path(rootfs) / "etc" / "group", "user.origin") == b"test"
    out = subprocess.run(["chroot", rootfs, "/bin/sh", "-c", "echo hi from $(id -u)"], capture_output=True, text=True)
    assert out.stdout == "hi from 0\n", out.stderr
    assert (mounts_under(Path(rootfs)) != []) == (snapshotter.driver == "overlay")
    await snapshotter.remove("c1")


async def test_writes_land_in_the_container_only(snapshotter, tmp_path, base) -> None:
    ids = await build(snapshotter, tmp_path, [base])
    one = Path(await snapshotter.prepare("one", ids))
    two = Path(await snapshotter.prepare("two", ids))
    (one / "a" / "x").write_bytes(b"changed")
    (one / "new").write_bytes(b"n")
    os.unlink(one / "b" / "z")
    layer = snapshotter.layer_dir(chain_ids(ids)[-1]) / "fs"
    assert (layer / "a" / "x").read_bytes() == b"x1" and (layer / "b" / "z").exists()
    assert (two / "a" / "x").read_bytes() == b"x1" and (two / "b" / "z").exists() and not (two / "new").exists()
    if snapshotter.driver == "overlay":
        upper = snapshotter.containers_dir / "one" / "upper"
        assert (upper / "a" / "x").read_bytes() == b"changed" and (upper / "new").exists()
        mountinfo = Path("/proc/self/mountinfo").read_text().splitlines()
        lines = [line for line in mountinfo if "overlay" in line and str(snapshotter.root) in line]
        assert len(lines) == 2 and all(f"lowerdir={layer}" in line for line in lines)
    await snapshotter.remove("one")
    await snapshotter.remove("two")


async def test_whiteouts_and_opaque_directories_hide_lower_files(snapshotter, tmp_path, tar_builder, base) -> None:
    top = (
        tar_builder()
        .file("a/.wh.x")
        .file("b/.wh..wh..opq")
        .file("b/fresh", b"f")
        .file(".wh.link")
        .file(".wh.keep")
        .dir("keep")
        .file("keep/inside")
        .bytes()
    )
    ids = await build(snapshotter, tmp_path, [base, top])
    rootfs = Path(await snapshotter.prepare("c", ids))
    assert os.listdir(rootfs / "a") == ["y"]
    assert os.listdir(rootfs / "b") == ["fresh"]
    assert not os.path.lexists(rootfs / "link")
    assert (rootfs / "keep").is_dir() and os.listdir(rootfs / "keep") == ["inside"]
    await snapshotter.remove("c")


async def test_remove_leaves_no_mount_and_no_directory(mounts_under, snapshotter, tmp_path, base) -> None:
    ids = await build(snapshotter, tmp_path, [base])
    rootfs = Path(await snapshotter.prepare("gone", ids))
    await snapshotter.remove("gone")
    assert mounts_under(snapshotter.root) == []
    assert not rootfs.exists() and list(snapshotter.containers_dir.iterdir()) == []
    await snapshotter.remove("gone")


async def test_remove_of_a_busy_rootfs_detaches_it(mounts_under, overlay, tmp_path, base) -> None:
    ids = await build(overlay, tmp_path, [base])
    rootfs = await overlay.prepare("busy", ids)
    fd = os.open(os.path.join(rootfs, "a"), os.O_RDONLY | os.O_DIRECTORY)
    holder = subprocess.Popen(["sleep", "30"], cwd=rootfs)
    try:
        await overlay.remove("busy")
        assert mounts_under(overlay.root) == []
    finally:
        holder.kill()
        holder.wait()
        os.close(fd)


async def test_prepare_is_idempotent_and_remounts_the_same_upper(mounts_under, overlay, tmp_path, base) -> None:
    from shoal.plugins.overlay.mounts import unmount

    ids = await build(overlay, tmp_path, [base])
    rootfs = await overlay.prepare("c", ids)
    Path(rootfs, "mine").write_text("kept")
    assert await overlay.prepare("c", ids) == rootfs
    assert len(mounts_under(Path(rootfs))) == 1
    unmount(rootfs)  # as after a reboot
    assert await overlay.prepare("c", ids) == rootfs
    assert Path(rootfs, "mine").read_text() == "kept"
    await overlay.remove("c")


async def test_many_layers_exceed_the_options_page(mounts_under, overlay, tmp_path, tar_builder) -> None:
    layers = [tar_builder().file(f"f{n}", str(n).encode()).bytes() for n in range(60)]
    ids = await build(overlay, tmp_path, layers)
    rootfs = Path(await overlay.prepare("deep", ids))
    assert len(os.listdir(rootfs)) == 60
    assert (rootfs / "f0").read_bytes() == b"0" and (rootfs / "f59").read_bytes() == b"59"
    await overlay.remove("deep")
    assert mounts_under(overlay.root) == []


async def test_gc_keeps_what_images_and_containers_use(snapshotter, tmp_path, tar_builder, base) -> None:
    top = tar_builder().file("top").bytes()
    other = tar_builder().file("other").bytes()
    ids = await build(snapshotter, tmp_path, [base, top])
    (other_id,) = await build(snapshotter, tmp_path, [other])
    chains = chain_ids(ids)
    await snapshotter.prepare("user", [ids[0]])
    # The stack's top keeps its parent; the container keeps the base anyway.
    assert await snapshotter.gc({chains[1]}) == [other_id]
    assert await snapshotter.gc(set()) == [chains[1]]
    assert await snapshotter.has_layer([ids[0]])
    await snapshotter.remove("user")
    assert await snapshotter.gc(set()) == [chains[0]]
    assert list(snapshotter.layers_dir.iterdir()) == []


async def test_bad_keys_and_missing_layers(snapshotter, base, tmp_path) -> None:
    with pytest.raises(InvalidArgument, match="snapshot key"):
        await snapshotter.prepare("../escape", [])
    with pytest.raises(NotFound, match="not unpacked"):
        await snapshotter.prepare("c", [diff_id(b"nothing")])
    assert list(snapshotter.containers_dir.iterdir()) == []


async def test_failed_mount_leaves_nothing(overlay, tmp_path, base, monkeypatch) -> None:
    from shoal.plugins.overlay import mounts

    ids = await build(overlay, tmp_path, [base])

    def refuse(*args: object) -> None:
        raise OSError(22, "refused")

    monkeypatch.setattr(mounts, "mount_overlay", refuse)
    with pytest.raises(OSError):
        await overlay.prepare("c", ids)
    assert list(overlay.containers_dir.iterdir()) == [] and list(overlay.tmp_dir.iterdir()) == []


def test_auto_driver_picks_overlay_here_and_copy_without_it(mount_guard, monkeypatch, caplog) -> None:
    import logging

    from shoal.plugins.overlay import mounts

    caplog.set_level(logging.INFO, "shoal.plugins.overlay")
    assert OverlaySnapshotter.open(mount_guard / "a", "auto").driver == "overlay"

    def no_overlay(*args: object) -> None:
        raise OSError(19, "No such device")

    monkeypatch.setattr(mounts, "mount", no_overlay)
    assert OverlaySnapshotter.open(mount_guard / "b", "auto").driver == "copy"
    assert "driver copy (overlay mount failed: No such device)" in caplog.text
    assert list((mount_guard / "b" / "tmp").iterdir()) == []




async def test_reopen_finishes_interrupted_work(mounts_under, overlay, tmp_path, base) -> None:
    ids = await build(overlay, tmp_path, [base])
    rootfs = await overlay.prepare("c", ids)
    directory = overlay.containers_dir / "c"
    os.rename(directory, directory.with_name(".removing-c"))  # a crash mid-removal, still mounted
    (overlay.tmp_dir / "layer-half").mkdir()
    reopened = OverlaySnapshotter.open(overlay.root, "overlay")
    assert list(reopened.containers_dir.iterdir()) == [] and list(reopened.tmp_dir.iterdir()) == []
    assert mounts_under(overlay.root) == [] and not os.path.exists(rootfs)
