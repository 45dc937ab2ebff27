"""Turn an imported root filesystem into a layer blob: gzip-compressed tar, with its diff id.

Sources: a tar file (plain, gzip, bzip2, xz, or zstd when ``zstandard`` is installed), or a
directory, which is tarred up deterministically (entries sorted by name, numeric owners
only, whole-second times, xattrs as ``SCHILY.xattr.*`` PAX records), so the same tree
always gives the same diff id.

One pass over the uncompressed bytes computes the diff id (sha256 of the tar, what
``rootfs.diff_ids`` lists) and feeds gzip, whose output goes into a ``BlobWriter`` that
hashes it again for the blob's own digest (what the manifest lists and a registry push
sends). Everything here blocks and runs in a worker thread.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import stat
import tarfile
from dataclasses import dataclass
from typing import BinaryIO

from shoal.errors import InvalidArgument
from shoal.plugins.overlay.compression import decompressed, is_data_error

from .blobs import BlobWriter

_CHUNK = 1 << 20
_PAX_XATTR = "SCHILY.xattr."


@dataclass(frozen=True)
class PackedLayer:
    """A layer blob written (not yet committed) by ``pack_layer``."""

    diff_id: str  # sha256 of the uncompressed tar
    size: int  # bytes of the uncompressed tar


class _LayerSink:
    """File-like sink: hashes the uncompressed tar and gzips it into a blob writer."""

    def __init__(self, blob: BlobWriter, level: int) -> None:
        self._hash = hashlib.sha256()
        self.size = 0
        self._gzip = gzip.GzipFile(fileobj=blob, mode="wb", compresslevel=level, mtime=0)

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self.size += len(data)
        return self._gzip.write(data)

    def close(self) -> None:
        self._gzip.close()

    @property
    def diff_id(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def pack_layer(source: str, blob: BlobWriter, level: int = 6) -> PackedLayer:
    """Write the layer blob of a tar file or directory into ``blob``.

    Args:
        source: path of a tar (compressed or not) or of a directory.
        blob: where the gzip-compressed tar goes; the caller commits or discards it.
        level: gzip compression level (1 fastest .. 9 smallest).
    Returns:
        The layer's diff id and uncompressed size. Raises ``InvalidArgument`` for a
        missing source or corrupt compressed data.
    """
    sink = _LayerSink(blob, level)
    try:
        if os.path.isdir(source):
            tar_directory(source, sink)  # type: ignore[arg-type]
        else:
            try:
                raw = open(source, "rb")
            except FileNotFoundError:
                raise InvalidArgument(f"import source {source!r} does not exist") from None
            with raw:
                try:
                    shutil.copyfileobj(decompressed(raw), sink, _CHUNK)  # type: ignore[misc]
                except Exception as exc:
                    if is_data_error(exc):
                        raise InvalidArgument(f"import source {source!r} is corrupt or truncated: {exc}") from None
                    raise
    finally:
        sink.close()
    return PackedLayer(sink.diff_id, sink.size)


def tar_directory(directory: str, out: BinaryIO) -> None:
    """Write a deterministic tar of ``directory``'s contents (not following symlinks).

    Args:
        directory: the root filesystem to archive.
        out: a writable binary stream.
    Returns:
        None.
    """
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, errors="surrogateescape") as tar:  # type: ignore[call-overload]
        _add_tree(tar, directory, "")


def _add_tree(tar: tarfile.TarFile, directory: str, prefix: str) -> None:
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        arcname = prefix + name
        info = tar.gettarinfo(path, arcname)
        if info is None:  # a socket: nothing a tar can hold
            continue
        info.uname = info.gname = ""
        info.mtime = int(info.mtime)
        for key in _listxattr(path):
            value = os.getxattr(path, key, follow_symlinks=False)
            info.pax_headers[_PAX_XATTR + key] = value.decode("utf-8", "surrogateescape")
        if info.isreg():
            with open(path, "rb") as f:
                tar.addfile(info, f)
        else:
            tar.addfile(info)
        if info.isdir() and not stat.S_ISLNK(os.lstat(path).st_mode):
            _add_tree(tar, path, arcname + "/")


def _listxattr(path: str) -> list[str]:
    try:
        return sorted(os.listxattr(path, follow_symlinks=False))
    except OSError:
        return []
