"""Layer unpacking: metadata kept, whiteouts in overlayfs form, crafted tars contained."""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import sys
from pathlib import Path

import pytest

from shoal.errors import InvalidArgument, NotFound
from shoal.plugins.overlay.snapshotter import OverlaySnapshotter, chain_ids
from shoal.plugins.overlay.unpack import OPAQUE_XATTR

from layers_support import diff_id

pytestmark = pytest.mark.root



@pytest.fixture
def snapshotter(mount_guard: Path) -> OverlaySnapshotter:
    return OverlaySnapshotter.open(mount_guard / "overlay", "overlay")


async def apply(snap: OverlaySnapshotter, tmp: Path, data: bytes, below: list[str] = ()) -> Path:
    source = tmp / f"layer-{len(below)}.tar"
    source.write_bytes(data)
    chain = await snap.apply_layer([*below, diff_id(data)], str(source))
    return snap.layer_dir(chain) / "fs"


def assert_nothing_left(snap: OverlaySnapshotter) -> None:
    assert list(snap.layers_dir.iterdir()) == []
    assert list(snap.tmp_dir.iterdir()) == []


async def test_metadata_is_kept(snapshotter, tmp_path, tar_builder) -> None:
    data = (
        tar_builder()
        .dir("etc", mode=0o750)
        .file("etc/suid", b"s", mode=0o4755, uid=1000)
        .file("etc/caps", b"c", **{"SCHILY.xattr.user.note": "hello"})
        .hardlink("etc/caps-link", "etc/caps")
        .symlink("etc/link", "/etc/suid")
        .device("null", 1, 3)
        .fifo("pipe")
        .bytes()
    )
    fs = await apply(snapshotter, tmp_path, data)
    suid = os.stat(fs / "etc" / "suid")
    assert (stat.S_IMODE(suid.st_mode), suid.st_uid, suid.st_gid) == (0o4755, 1000, 1000)
    assert int(suid.st_mtime) == 1_700_000_000
    assert stat.S_IMODE(os.stat(fs / "etc").st_mode) == 0o750
    assert int(os.stat(fs / "etc").st_mtime) == 1_700_000_000
    assert os.getxattr(fs / "etc" / "caps", "user.note") == b"hello"
    assert os.stat(fs / "etc" / "caps").st_ino == os.stat(fs / "etc" / "caps-link").st_ino
    assert os.readlink(fs / "etc" / "link") == "/etc/suid"
    null = os.lstat(fs / "null")
    assert stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)
    assert stat.S_ISFIFO(os.lstat(fs / "pipe").st_mode)
    meta = (fs.parent / "layer.json").read_text()
    assert diff_id(data) in meta


async def test_whiteouts_become_overlay_marks(snapshotter, tmp_path, tar_builder) -> None:
    data = (
        tar_builder()
        .dir("a")
        .file("a/.wh.gone")
        .dir("b")
        .file("b/.wh..wh..opq")
        .file("b/new")
        .file(".wh..wh.plnk")
        .file("c/.wh..wh..opq")
        .bytes()
    )
    fs = await apply(snapshotter, tmp_path, data)
    gone = os.lstat(fs / "a" / "gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert os.getxattr(fs / "b", OPAQUE_XATTR) == b"y"
    assert os.getxattr(fs / "c", OPAQUE_XATTR) == b"y"
    assert sorted(os.listdir(fs)) == ["a", "b", "c"]
    assert os.listdir(fs / "b") == ["new"]


async def test_overlay_xattrs_from_the_tar_are_dropped(snapshotter, tmp_path, tar_builder) -> None:
    data = tar_builder().file("f", b"x", **{"SCHILY.xattr.trusted.overlay.redirect": "/etc"}).bytes()
    fs = await apply(snapshotter, tmp_path, data)
    assert "trusted.overlay.redirect" not in os.listxattr(fs / "f")


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "./../../evil"])
async def test_dot_dot_members_are_refused(snapshotter, tmp_path, tar_builder, name) -> None:
    with pytest.raises(InvalidArgument, match="outside the layer"):
        await apply(snapshotter, tmp_path, tar_builder().file(name, b"pwned").bytes())
    assert not (snapshotter.root / "evil").exists() and not (tmp_path / "evil").exists()
    assert_nothing_left(snapshotter)


async def test_absolute_members_are_contained(snapshotter, tmp_path, tar_builder) -> None:
    target = tmp_path / "outside"
    fs = await apply(snapshotter, tmp_path, tar_builder().file(str(target), b"contained").bytes())
    assert not target.exists()
    assert (fs / str(target).lstrip("/")).read_bytes() == b"contained"


@pytest.mark.parametrize("link", ["/", "../../../../../../..", "/../..", "x/../../.."])
async def test_writes_through_symlinks_stay_inside(snapshotter, tmp_path, tar_builder, link) -> None:
    outside = tmp_path / "victim"
    outside.mkdir()
    relative = str(outside).lstrip("/")
    data = tar_builder().symlink("escape", link).file(f"escape/{relative}/pwned", b"p").bytes()
    fs = await apply(snapshotter, tmp_path, data)
    assert list(outside.iterdir()) == []
    assert (fs / relative / "pwned").read_bytes() == b"p"


async def test_symlinked_directory_chain_stays_inside(snapshotter, tmp_path, tar_builder) -> None:
    outside = tmp_path / "victim"
    outside.mkdir()
    data = (
        tar_builder()
        .symlink("a", "b/c")
        .symlink("b", str(tmp_path))
        .file("a/victim/pwned", b"p")
        .bytes()
    )
    fs = await apply(snapshotter, tmp_path, data)
    assert list(outside.iterdir()) == []
    assert (fs / str(tmp_path).lstrip("/") / "c" / "victim" / "pwned").exists()


@pytest.mark.parametrize("target", ["../../../etc/passwd", "escape/etc/passwd", "/etc/passwd"])
async def test_hard_links_cannot_reach_outside(snapshotter, tmp_path, tar_builder, target) -> None:
    data = tar_builder().symlink("escape", "/").hardlink("stolen", target).bytes()
    with pytest.raises(InvalidArgument):
        await apply(snapshotter, tmp_path, data)
    assert_nothing_left(snapshotter)


async def test_a_symlink_member_never_writes_through_an_existing_link(snapshotter, tmp_path, tar_builder) -> None:
    victim = tmp_path / "victim-file"
    victim.write_text("original")
    data = tar_builder().symlink("f", str(victim)).file("f", b"replaced").bytes()
    fs = await apply(snapshotter, tmp_path, data)
    assert victim.read_text() == "original"
    assert (fs / "f").read_bytes() == b"replaced" and not (fs / "f").is_symlink()


async def test_digest_mismatch_leaves_nothing(snapshotter, tmp_path, tar_builder) -> None:
    source = tar_builder().file("f", b"x").write(tmp_path / "l.tar")
    with pytest.raises(InvalidArgument, match="expected"):
        await snapshotter.apply_layer([diff_id(b"something else")], str(source))
    assert_nothing_left(snapshotter)


async def test_truncated_or_garbage_layers_leave_nothing(snapshotter, tmp_path, tar_builder) -> None:
    data = tar_builder().file("f", os.urandom(100_000)).bytes()
    truncated = tmp_path / "t.tar.gz"
    truncated.write_bytes(gzip.compress(data)[:5000])
    with pytest.raises(InvalidArgument, match="corrupt or truncated"):
        await snapshotter.apply_layer([diff_id(data)], str(truncated))
    garbage = tmp_path / "g.tar"
    garbage.write_bytes(b"this is not a tar archive" * 100)
    with pytest.raises(InvalidArgument):
        await snapshotter.apply_layer([diff_id(garbage.read_bytes())], str(garbage))
    assert_nothing_left(snapshotter)


async def test_gzip_layers_and_a_second_apply_is_a_no_op(snapshotter, tmp_path, tar_builder) -> None:
    data = tar_builder().file("f", b"x").bytes()
    source = tmp_path / "l.tar.gz"
    source.write_bytes(gzip.compress(data))
    chain = await snapshotter.apply_layer([diff_id(data)], str(source))
    assert chain == diff_id(data)
    before = os.stat(snapshotter.layer_dir(chain)).st_ino
    source.unlink()
    assert await snapshotter.apply_layer([diff_id(data)], str(source)) == chain
    assert os.stat(snapshotter.layer_dir(chain)).st_ino == before
    assert await snapshotter.has_layer([diff_id(data)])


async def test_a_layer_needs_its_parent(snapshotter, tmp_path, tar_builder) -> None:
    data = tar_builder().file("f").bytes()
    with pytest.raises(NotFound, match="parent layer"):
        await apply(snapshotter, tmp_path, data, below=[diff_id(b"missing")])


async def test_zstd_layers_unpack(snapshotter, tmp_path, tar_builder) -> None:
    import zstandard

    data = tar_builder().file("f", b"z").bytes()
    source = tmp_path / "l.tar.zst"
    source.write_bytes(zstandard.ZstdCompressor().compress(data))
    chain = await snapshotter.apply_layer([diff_id(data)], str(source))
    assert (snapshotter.layer_dir(chain) / "fs" / "f").read_bytes() == b"z"


async def test_zstd_layers_fail_clearly_without_the_module(snapshotter, tmp_path, tar_builder, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "zstandard", None)  # as if it were not installed
    data = tar_builder().file("f", b"z").bytes()
    source = tmp_path / "l.tar.zst"
    source.write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 32)
    with pytest.raises(InvalidArgument, match="zstandard"):
        await snapshotter.apply_layer([diff_id(data)], str(source))
    assert_nothing_left(snapshotter)


def test_chain_ids_follow_the_oci_definition() -> None:
    a, b, c = (diff_id(x) for x in (b"a", b"b", b"c"))
    ab = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    abc = "sha256:" + hashlib.sha256(f"{ab} {c}".encode()).hexdigest()
    assert chain_ids([a, b, c]) == [a, ab, abc]
    with pytest.raises(InvalidArgument):
        chain_ids(["nope"])
