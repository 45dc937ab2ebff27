"""Unpacking a layer while its file is still being downloaded: the unpack follows what is
announced, becomes a layer only after the end is announced (and the caller's own wait), and
leaves nothing when the download is abandoned, wrong or unsafe."""

from __future__ import annotations

import gzip
import os
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from shoal.errors import InvalidArgument
from shoal.plugins.overlay.snapshotter import OverlaySnapshotter
from shoal.plugins.overlay.unpack import UnsafeLayer

from layers_support import diff_id

pytestmark = pytest.mark.root



@pytest.fixture
def snapshotter(tmp_path: Path) -> OverlaySnapshotter:
    return OverlaySnapshotter.open(tmp_path / "overlay", "copy")


def unpackers() -> list[int]:
    """Child processes of this test process that run the layer unpacker."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                if b"_worker_main" in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def assert_nothing_left(snap: OverlaySnapshotter) -> None:
    assert list(snap.layers_dir.iterdir()) == []
    assert list(snap.tmp_dir.iterdir()) == []
    assert unpackers() == []


async def test_follows_the_file_and_commits_after_the_end_and_the_wait(snapshotter: OverlaySnapshotter, tmp_path: Path,
                                                                        tar_builder: Any) -> None:  # fmt: skip
    payload = os.urandom(3 << 20)
    data = tar_builder().file("big", payload).symlink("link", "big").bytes()
    blob = gzip.compress(data, compresslevel=1)
    source = tmp_path / "partial"
    send, receive = trio.open_memory_channel[tuple[int, bool]](10)
    parent_done = trio.Event()
    async with trio.open_nursery() as nursery:
        follow = partial(snapshotter.apply_growing_layer, before_commit=parent_done.wait)
        already = await nursery.start(follow, [diff_id(data)], str(source), receive)
        assert already is False and source.exists()  # created, so that it can be followed from the start
        half = len(blob) // 2
        with open(source, "ab") as f:
            f.write(blob[:half])
        await send.send((half, False))
        await trio.sleep(0.2)
        assert not await snapshotter.has_layer([diff_id(data)])
        with open(source, "ab") as f:
            f.write(blob[half:])
        source.rename(tmp_path / "stored")  # the blob store adopts it: the unpack reads on
        await send.send((len(blob), True))
        await trio.sleep(0.3)
        assert not await snapshotter.has_layer([diff_id(data)])  # still waiting for before_commit
        parent_done.set()
    fs = snapshotter.layer_dir(diff_id(data)) / "fs"
    assert (fs / "big").read_bytes() == payload and os.readlink(fs / "link") == "big"
    assert list(snapshotter.tmp_dir.iterdir()) == [] and unpackers() == []


async def test_an_unpacked_layer_is_reported_at_start(snapshotter: OverlaySnapshotter, tmp_path: Path, tar_builder: Any) -> None:
    data = tar_builder().file("f", b"x").bytes()
    (tmp_path / "l.tar").write_bytes(data)
    await snapshotter.apply_layer([diff_id(data)], str(tmp_path / "l.tar"))
    _, receive = trio.open_memory_channel[tuple[int, bool]](1)
    async with trio.open_nursery() as nursery:
        assert await nursery.start(snapshotter.apply_growing_layer, [diff_id(data)], str(tmp_path / "unused"), receive) is True
    assert unpackers() == []


async def test_cancelled_before_the_end_leaves_nothing(snapshotter: OverlaySnapshotter, tmp_path: Path, tar_builder: Any) -> None:
    data = tar_builder().file("f", os.urandom(1 << 20)).bytes()
    source = tmp_path / "partial"
    source.write_bytes(data)
    send, receive = trio.open_memory_channel[tuple[int, bool]](10)
    async with trio.open_nursery() as nursery:
        await nursery.start(snapshotter.apply_growing_layer, [diff_id(data)], str(source), receive)
        await send.send((len(data), False))  # everything there, but never declared complete (not verified)
        await trio.sleep(0.3)
        assert unpackers() != []
        nursery.cancel_scope.cancel()
    assert_nothing_left(snapshotter)


async def test_sizes_ending_without_an_end_is_refused(snapshotter: OverlaySnapshotter, tmp_path: Path, tar_builder: Any) -> None:
    data = tar_builder().file("f", b"x" * 5000).bytes()
    source = tmp_path / "partial"
    source.write_bytes(data)
    send, receive = trio.open_memory_channel[tuple[int, bool]](10)
    await send.send((100, False))
    send.close()
    with pytest.raises(InvalidArgument, match="before its download was complete"):
        await snapshotter.apply_growing_layer([diff_id(data)], str(source), receive)
    assert_nothing_left(snapshotter)


@pytest.mark.parametrize("wrong", ["diff id", "unsafe"])
async def test_wrong_or_unsafe_content_leaves_nothing(snapshotter: OverlaySnapshotter, tmp_path: Path, tar_builder: Any,
                                                      wrong: str) -> None:  # fmt: skip
    data = tar_builder().file("../escape" if wrong == "unsafe" else "f", b"pwned").bytes()
    source = tmp_path / "partial"
    source.write_bytes(data)
    send, receive = trio.open_memory_channel[tuple[int, bool]](10)
    await send.send((len(data), True))
    expected = diff_id(b"other") if wrong == "diff id" else diff_id(data)
    with pytest.raises(UnsafeLayer if wrong == "unsafe" else InvalidArgument, match="outside|expected"):
        await snapshotter.apply_growing_layer([expected], str(source), receive)
    assert_nothing_left(snapshotter)
    assert not (tmp_path / "escape").exists() and not (tmp_path / "overlay" / "escape").exists()


async def test_zstd_layers_follow_too(snapshotter: OverlaySnapshotter, tmp_path: Path, tar_builder: Any) -> None:
    import zstandard

    data = tar_builder().file("z", b"zstd" * 1000).bytes()
    source = tmp_path / "partial"
    source.write_bytes(zstandard.ZstdCompressor().compress(data))
    send, receive = trio.open_memory_channel[tuple[int, bool]](10)
    await send.send((source.stat().st_size, True))
    chain = await snapshotter.apply_growing_layer([diff_id(data)], str(source), receive)
    assert (snapshotter.layer_dir(chain) / "fs" / "z").read_bytes() == b"zstd" * 1000
