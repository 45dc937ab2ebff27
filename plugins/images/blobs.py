"""Content-addressed blob storage: ``blobs/sha256/<hex>``, verified while written.

A blob is written to a private file under ``ingest/``, hashed as its bytes arrive, and
renamed into ``blobs/`` only when its digest is known (or matches the one expected). A
mismatching blob is refused and its temporary file removed, so ``blobs/`` only ever holds
complete files whose name is their sha256. Rename is atomic on one file system, so a crash
leaves at worst an orphan in ``ingest/``, which ``BlobStore.open`` clears.

Everything here blocks; the image store calls it from worker threads.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from shoal.errors import InvalidArgument, NotFound

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is a well-formed sha256 digest; raise ``InvalidArgument`` otherwise."""
    if not _DIGEST.fullmatch(digest):
        raise InvalidArgument(f"malformed digest {digest!r}: expected sha256:<64 lowercase hex digits>")
    return digest


def sha256_digest(data: bytes) -> str:
    """The "sha256:<hex>" digest of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


class BlobWriter:
    """A blob being written: a file-like sink that hashes what it is given.

    Use as a context manager: ``commit()`` inside it stores the blob; leaving without a
    commit (an error, a cancelled transfer) deletes the partial file.
    """

    def __init__(self, store: BlobStore, expected: str | None) -> None:
        self._store = store
        self._expected = check_digest(expected) if expected else None
        self._hash = hashlib.sha256()
        fd, name = tempfile.mkstemp(dir=store.ingest_dir, prefix="blob-")
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self.temp_path = Path(name)
        self.size = 0
        self.digest: str | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append bytes (the file-object protocol, so it can sit under gzip or tarfile)."""
        self._hash.update(data)
        self.size += len(data)
        return self._file.write(data)

    def flush(self) -> None:
        """Flush buffered bytes to the temporary file."""
        self._file.flush()

    def finish(self) -> str:
        """Close the temporary file and check its digest, without storing it yet.

        Lets a caller use the complete file (unpack it) before it becomes visible.
        """
        if self.digest is None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self.digest = "sha256:" + self._hash.hexdigest()
            if self._expected and self.digest != self._expected:
                raise InvalidArgument(f"blob digest mismatch: expected {self._expected}, got {self.digest}")
        return self.digest

    def commit(self) -> str:
        """Finish and move the blob into the store; return its digest."""
        digest = self.finish()
        os.replace(self.temp_path, self._store.path(digest))
        self.temp_path = Path()
        return digest

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if not self._file.closed:
            self._file.close()
        if self.temp_path != Path():
            self.temp_path.unlink(missing_ok=True)


class BlobStore:
    """Blobs under ``root/blobs/sha256``, with partial writes under ``root/ingest``."""

    def __init__(self, root: Path) -> None:
        self.blob_dir = root / "blobs" / "sha256"
        self.ingest_dir = root / "ingest"

    @classmethod
    def open(cls, root: Path) -> BlobStore:
        """Create the directories and drop partial writes an earlier run left behind."""
        store = cls(root)
        store.blob_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(store.ingest_dir, ignore_errors=True)
        store.ingest_dir.mkdir(parents=True)
        return store

    def path(self, digest: str) -> Path:
        """Where the blob of ``digest`` lives (whether or not it exists)."""
        return self.blob_dir / check_digest(digest).removeprefix("sha256:")

    def has(self, digest: str) -> bool:
        """Tell whether the blob is stored."""
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        """The blob's size in bytes; raises ``NotFound``."""
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def read(self, digest: str) -> bytes:
        """The whole blob (for manifests and configs); raises ``NotFound``."""
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def writer(self, expected: str | None = None) -> BlobWriter:
        """Start writing a blob, optionally one that must hash to ``expected``."""
        return BlobWriter(self, expected)

    def put(self, data: bytes, expected: str | None = None) -> str:
        """Store a small blob in one go; return its digest."""
        with self.writer(expected) as writer:
            writer.write(data)
            return writer.commit()

    def delete(self, digest: str) -> None:
        """Remove a blob; a missing one is not an error."""
        self.path(digest).unlink(missing_ok=True)

    def digests(self) -> set[str]:
        """Every stored blob's digest."""
        return {"sha256:" + p.name for p in self.blob_dir.iterdir() if _DIGEST.fullmatch("sha256:" + p.name)}
