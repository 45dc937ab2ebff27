"""Content-addressed blob storage: verified while written, atomic, nothing stored on mismatch."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from shoal.errors import InvalidArgument, NotFound
from shoal.plugins.images.blobs import BlobStore, check_digest, sha256_digest


def test_put_read_and_layout(tmp_path: Path) -> None:
    store = BlobStore.open(tmp_path)
    digest = store.put(b"hello")
    assert digest == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert (tmp_path / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_bytes() == b"hello"
    assert store.has(digest) and store.read(digest) == b"hello" and store.size(digest) == 5
    assert store.digests() == {digest}
    store.delete(digest)
    store.delete(digest)
    assert not store.has(digest)
    with pytest.raises(NotFound):
        store.read(digest)


def test_mismatching_blob_is_refused_and_nothing_stored(tmp_path: Path) -> None:
    store = BlobStore.open(tmp_path)
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        store.put(b"evil", expected=sha256_digest(b"good"))
    assert store.digests() == set()
    assert list(store.ingest_dir.iterdir()) == []


def test_streamed_write_commits_only_when_asked(tmp_path: Path) -> None:
    store = BlobStore.open(tmp_path)
    with store.writer(expected=sha256_digest(b"abcdef")) as writer:
        writer.write(b"abc")
        writer.write(memoryview(b"def"))
        assert store.digests() == set()
        digest = writer.commit()
    assert store.read(digest) == b"abcdef"
    with store.writer() as abandoned:
        abandoned.write(b"partial")
    assert store.digests() == {digest}
    assert list(store.ingest_dir.iterdir()) == []


def test_open_clears_partial_writes(tmp_path: Path) -> None:
    store = BlobStore.open(tmp_path)
    (store.ingest_dir / "blob-leftover").write_bytes(b"x")
    BlobStore.open(tmp_path)
    assert list(store.ingest_dir.iterdir()) == []


@pytest.mark.parametrize("bad", ["sha256:abc", "md5:" + "0" * 64, "sha256:" + "A" * 64, "../../etc/passwd"])
def test_malformed_digests_never_become_paths(tmp_path: Path, bad: str) -> None:
    store = BlobStore.open(tmp_path)
    with pytest.raises(InvalidArgument, match="malformed digest"):
        store.path(bad)
    with pytest.raises(InvalidArgument):
        check_digest(bad)
