"""Layer blobs from imports: deterministic directory tars, every compression, diff ids."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import sys
import tarfile
from pathlib import Path

import pytest

from shoal.errors import InvalidArgument
from shoal.plugins.images import oci
from shoal.plugins.images.blobs import BlobStore
from shoal.plugins.images.pack import pack_layer, tar_directory


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    (root / "b" / "deep").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "b" / "deep" / "c").write_text("c")
    os.symlink("a.txt", root / "link")
    os.link(root / "a.txt", root / "hard")
    os.setxattr(root / "a.txt", "user.k", b"\xff\x00binary")
    return root


def tar_bytes(directory: Path) -> bytes:
    out = io.BytesIO()
    tar_directory(str(directory), out)
    return out.getvalue()


def test_directory_tars_are_deterministic_and_complete(tree: Path) -> None:
    data = tar_bytes(tree)
    assert tar_bytes(tree) == data
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["a.txt", "b", "b/deep", "b/deep/c", "hard", "link"]
    assert all(m.uname == "" and m.gname == "" for m in members)
    by_name = {m.name: m for m in members}
    assert by_name["hard"].islnk() and by_name["hard"].linkname == "a.txt"
    assert by_name["link"].issym() and by_name["link"].linkname == "a.txt"
    raw = by_name["a.txt"].pax_headers["SCHILY.xattr.user.k"].encode("utf-8", "surrogateescape")
    assert raw == b"\xff\x00binary"


@pytest.mark.parametrize("compress", [lambda b: b, gzip.compress, bz2.compress, lzma.compress])
def test_every_compression_gives_the_same_diff_id(tmp_path: Path, tree: Path, compress) -> None:
    data = tar_bytes(tree)
    source = tmp_path / "layer"
    source.write_bytes(compress(data))
    blobs = BlobStore.open(tmp_path / "store")
    with blobs.writer() as blob:
        layer = pack_layer(str(source), blob, level=1)
        digest = blob.commit()
    assert layer.diff_id == "sha256:" + hashlib.sha256(data).hexdigest() and layer.size == len(data)
    assert gzip.decompress(blobs.read(digest)) == data


def test_directory_and_its_tar_give_the_same_layer(tmp_path: Path, tree: Path) -> None:
    blobs = BlobStore.open(tmp_path / "store")
    (tmp_path / "t.tar").write_bytes(tar_bytes(tree))
    digests = []
    for source in (tree, tmp_path / "t.tar"):
        with blobs.writer() as blob:
            pack_layer(str(source), blob)
            digests.append(blob.commit())
    assert digests[0] == digests[1]


def test_corrupt_and_missing_sources(tmp_path: Path) -> None:
    blobs = BlobStore.open(tmp_path / "store")
    (tmp_path / "bad.gz").write_bytes(gzip.compress(os.urandom(5000))[:100])
    for source, complaint in ((tmp_path / "bad.gz", "corrupt or truncated"), (tmp_path / "none", "does not exist")):
        with blobs.writer() as blob, pytest.raises(InvalidArgument, match=complaint):
            pack_layer(str(source), blob)
    assert blobs.digests() == set() and list(blobs.ingest_dir.iterdir()) == []


def test_zstd_needs_its_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zstandard", None)  # as if it were not installed: import fails
    (tmp_path / "l.zst").write_bytes(b"\x28\xb5\x2f\xfd" + b"\0" * 16)
    blobs = BlobStore.open(tmp_path / "store")
    with blobs.writer() as blob, pytest.raises(InvalidArgument, match="'zstandard' is not installed"):
        pack_layer(str(tmp_path / "l.zst"), blob)


def test_oci_helpers(monkeypatch) -> None:
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    assert oci.host_platform() == {"os": "linux", "architecture": "arm64", "variant": "v8"}
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    assert oci.host_platform() == {"os": "linux", "architecture": "amd64"}
    assert oci.parse_timestamp("1970-01-01T00:00:01.500000000Z") == 1.5
    assert oci.parse_timestamp("1970-01-01T01:00:00+01:00") == 0
    assert oci.parse_timestamp("garbage") == 0
    with pytest.raises(InvalidArgument, match="Cmmd"):
        oci.image_config({"Cmmd": []}, [], "", "", "")
    assert oci.canonical_json({"b": 1, "a": [1]}) == b'{"a":[1],"b":1}'
