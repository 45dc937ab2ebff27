"""The write-ahead log: CRC-checked records in segment files, and snapshot files beside them.

Layout of a node's directory::

    wal/<seq>-<first index>.wal     segments, each opening with META and HARD_STATE records
    snap/<index>-<term>.snap        the latest snapshots (CRC over the whole file)

A record is ``length (u32) | crc32 (u32) | type (u8) | payload``; the CRC covers the type and the
payload. Entries are only ever appended: an entry whose index is at or below the last one read
replaces that suffix, which is how a follower's conflicting tail is overwritten without
rewriting files. On replay, a record that ends past the end of the *last* segment is a write
torn by a crash (never acknowledged, since acknowledgment follows fsync): it is cut off. Any
other bad record means the disk returned something else than was written: the node refuses to
start, naming the file and offset, rather than serve wrong data.
"""

from __future__ import annotations

import os
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from .codec import CodecError, Reader, decode_hard_state, encode_entry, encode_hard_state, encode_metadata, read_entry, read_metadata
from .errors import RaftError
from .messages import Entry, HardState, Snapshot

_HEADER = struct.Struct(">IIB")
_META = struct.Struct(">Q")
_BASE = struct.Struct(">QQ")
_SNAP_HEADER = struct.Struct(">8sIQ")
_SNAP_MAGIC = b"SHOALSNP"

META, ENTRY, HARD_STATE, BASE = 1, 2, 3, 4

#: No record is larger than this: a length above it is garbage, not a record.
MAX_RECORD = 64 << 20
#: Snapshot files kept; older ones are deleted once a newer one is durable.
SNAPSHOTS_KEPT = 2

_SEGMENT_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.wal$")
_SNAP_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.snap$")


class WalCorrupted(RaftError):
    """A WAL record or snapshot file failed its check somewhere a crash cannot explain."""

    def __init__(self, path: Path, offset: int, why: str) -> None:
        super().__init__(
            f"corrupt Raft data in {path} at offset {offset}: {why}; the node will not start on "
            "damaged data (move its data directory away and rejoin the cluster to rebuild it from peers)"
        )
        self.path = path
        self.offset = offset


class ClusterMismatch(RaftError):
    """The data directory belongs to another cluster or another node id."""


@dataclass
class Replayed:
    """What a WAL holds after recovery."""

    cluster_id: str
    node_id: int
    hard_state: HardState = field(default_factory=HardState)
    snapshot: Snapshot | None = None
    #: The index and term the entries follow (the snapshot's, or (0, 0)).
    base: tuple[int, int] = (0, 0)
    entries: list[Entry] = field(default_factory=list)
    #: Bytes cut off the end of the last segment (a torn write), for the log.
    truncated: int = 0


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _record(kind: int, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(bytes([kind])))
    return _HEADER.pack(len(payload), crc, kind) + payload


def _meta_payload(cluster_id: str, node_id: int) -> bytes:
    name = cluster_id.encode()
    return _META.pack(node_id) + struct.pack(">I", len(name)) + name


def _read_meta(payload: bytes) -> tuple[str, int]:
    r = Reader(payload)
    (node_id,) = r.unpack(_META)
    cluster_id = r.blob().decode()
    r.done()
    return cluster_id, node_id


class Wal:
    """An open WAL directory; not thread-safe (one writer, the node's driver)."""

    def __init__(self, root: Path, cluster_id: str, node_id: int, segment_bytes: int) -> None:
        self.root = root
        self.wal_dir = root / "wal"
        self.snap_dir = root / "snap"
        self.cluster_id = cluster_id
        self.node_id = node_id
        self.segment_bytes = segment_bytes
        self._fd = -1
        self._seq = 0
        self._size = 0
        self._pending: list[bytes] = []
        self._hard_state = HardState()
        self._last_index = 0

    # ----------------------------------------------------------------------- opening

    @classmethod
    def open(cls, root: Path, cluster_id: str, node_id: int, *, segment_bytes: int = 16 << 20) -> tuple[Wal, Replayed]:
        """Open (creating if needed) the WAL in ``root`` and replay it.

        An existing directory must belong to ``cluster_id`` and ``node_id`` (raises
        ``ClusterMismatch``). Raises ``WalCorrupted``.
        """
        wal = cls(root, cluster_id, node_id, segment_bytes)
        wal.wal_dir.mkdir(parents=True, exist_ok=True)
        wal.snap_dir.mkdir(parents=True, exist_ok=True)
        segments = wal._segments()
        if not segments:
            replayed = Replayed(cluster_id, node_id)
            wal._start_segment(1, 1)
            wal.sync()
            return wal, replayed
        replayed = wal._replay(segments)
        if replayed.cluster_id != cluster_id or replayed.node_id != node_id:
            raise ClusterMismatch(
                f"{root} holds Raft data of node {replayed.node_id} of cluster {replayed.cluster_id!r}, "
                f"but this node is {node_id} of cluster {cluster_id!r}; use an empty data directory "
                "to join another cluster"
            )
        wal._hard_state = replayed.hard_state
        wal._last_index = replayed.entries[-1].index if replayed.entries else replayed.base[0]
        seq, _ = segments[-1][:2]
        wal._seq = seq
        path = segments[-1][2]
        wal._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        wal._size = os.fstat(wal._fd).st_size
        if wal._size == 0:
            # A crash tore the head of a new segment away: write it again before any entry.
            wal._pending = wal._segment_head()
            wal.sync()
        return wal, replayed

    def _segments(self) -> list[tuple[int, int, Path]]:
        found = []
        for path in self.wal_dir.iterdir():
            m = _SEGMENT_NAME.match(path.name)
            if m:
                found.append((int(m.group(1), 16), int(m.group(2), 16), path))
        found.sort()
        return found

    def _replay(self, segments: list[tuple[int, int, Path]]) -> Replayed:
        snapshot = self._load_snapshot()
        meta: tuple[str, int] | None = None
        hard_state = HardState()
        base = (snapshot.index, snapshot.term) if snapshot else (0, 0)
        entries: list[Entry] = []
        truncated = 0
        term_at_snapshot: int | None = None
        for n, (_, _, path) in enumerate(segments):
            last_segment = n == len(segments) - 1
            data = path.read_bytes()
            offset = 0
            while offset < len(data):
                problem = None
                if offset + _HEADER.size > len(data):
                    problem = "torn header"
                else:
                    size, crc, kind = _HEADER.unpack_from(data, offset)
                    end = offset + _HEADER.size + size
                    if size > MAX_RECORD or end > len(data):
                        problem = "record runs past the end of the file"
                    else:
                        payload = data[offset + _HEADER.size : end]
                        if zlib.crc32(payload, zlib.crc32(bytes([kind]))) != crc:
                            if last_segment and end == len(data):
                                problem = "checksum mismatch in the last record"
                            else:
                                raise WalCorrupted(path, offset, "checksum mismatch")
                if problem is not None:
                    if not last_segment:
                        raise WalCorrupted(path, offset, problem + " (not in the last segment)")
                    truncated = len(data) - offset
                    self._truncate(path, offset)
                    break
                try:
                    if kind == META:
                        meta = _read_meta(payload)
                    elif kind == HARD_STATE:
                        hard_state = decode_hard_state(payload)
                    elif kind == BASE:
                        # A snapshot from the leader replaced the whole log up to here.
                        index, term = _BASE.unpack(payload)
                        if index >= base[0]:
                            base = (index, term)
                            entries = []
                            term_at_snapshot = None
                    elif kind == ENTRY:
                        r = Reader(payload)
                        entry = read_entry(r)
                        r.done()
                        if entry.index <= base[0]:
                            if snapshot is not None and entry.index == snapshot.index:
                                term_at_snapshot = entry.term
                        else:
                            expected = (entries[-1].index + 1) if entries else base[0] + 1
                            if entry.index > expected:
                                raise WalCorrupted(path, offset, f"entry {entry.index} leaves a gap after {expected - 1}")
                            del entries[len(entries) - (expected - entry.index) :]
                            entries.append(entry)
                    else:
                        raise WalCorrupted(path, offset, f"unknown record type {kind}")
                except CodecError as exc:
                    raise WalCorrupted(path, offset, f"undecodable record: {exc}") from None
                offset = end
        if meta is None:
            if len(segments) == 1 and segments[0][2].stat().st_size == 0 and snapshot is None:
                # A crash while the very first segment was created: nothing was ever stored.
                return Replayed(self.cluster_id, self.node_id, truncated=truncated)
            raise WalCorrupted(segments[0][2], 0, "no META record: not a WAL of this format")
        if snapshot is not None and base[0] == snapshot.index and term_at_snapshot not in (None, snapshot.term):
            # A crash came between writing a received snapshot and recording it in the WAL:
            # the entries after it belong to the log that snapshot replaced.
            entries = []
        return Replayed(meta[0], meta[1], hard_state, snapshot, base, entries, truncated)

    def _truncate(self, path: Path, offset: int) -> None:
        with open(path, "r+b") as f:
            f.truncate(offset)
            f.flush()
            os.fsync(f.fileno())

    # ----------------------------------------------------------------------- writing

    def _start_segment(self, seq: int, first_index: int) -> None:
        path = self.wal_dir / f"{seq:016x}-{first_index:016x}.wal"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._seq, self._size = fd, seq, 0
        self._pending = self._segment_head() + self._pending
        _fsync_dir(self.wal_dir)

    def _segment_head(self) -> list[bytes]:
        return [
            _record(META, _meta_payload(self.cluster_id, self.node_id)),
            _record(HARD_STATE, encode_hard_state(self._hard_state)),
        ]

    def append_entries(self, entries: list[Entry]) -> None:
        """Queue entries (replacing any stored suffix from the first one's index on)."""
        for e in entries:
            out: list[bytes] = []
            encode_entry(e, out)
            self._pending.append(_record(ENTRY, b"".join(out)))
        if entries:
            self._last_index = entries[-1].index

    def set_hard_state(self, hs: HardState) -> None:
        self._hard_state = hs
        self._pending.append(_record(HARD_STATE, encode_hard_state(hs)))

    def set_base(self, index: int, term: int) -> None:
        """Record that the log now follows a snapshot at ``index``: replay drops what precedes it."""
        self._last_index = max(self._last_index, index)
        self._pending.append(_record(BASE, _BASE.pack(index, term)))

    def flush(self, sync: bool) -> None:
        """Write the queued records in one call, and fsync them when ``sync`` (before acknowledging)."""
        if self._pending:
            data = b"".join(self._pending)
            self._pending = []
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            self._size += len(data)
        if sync:
            os.fdatasync(self._fd)
        if self._size >= self.segment_bytes:
            os.fsync(self._fd)
            self._start_segment(self._seq + 1, self._last_index + 1)
            self.flush(sync=True)

    def sync(self) -> None:
        self.flush(sync=True)

    def close(self) -> None:
        """Write any queued records (a commit index, say) without syncing them, and close."""
        if self._fd >= 0:
            try:
                self.flush(sync=False)
            finally:
                os.close(self._fd)
                self._fd = -1

    # ----------------------------------------------------------------------- snapshots

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Write a snapshot file durably (temporary file, fsync, rename, fsync of the directory)."""
        # The body (metadata, then data) is written in parts: copying megabytes into one buffer
        # would hold the interpreter lock, which this method, run in a worker thread, must not.
        meta, data = encode_metadata(snapshot.metadata), snapshot.data
        crc = zlib.crc32(data, zlib.crc32(meta))
        path = self.snap_dir / f"{snapshot.index:016x}-{snapshot.term:016x}.snap"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(_SNAP_HEADER.pack(_SNAP_MAGIC, crc, len(meta) + len(data)))
            f.write(meta)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(self.snap_dir)
        for old in self._snapshot_files()[:-SNAPSHOTS_KEPT]:
            old.unlink()

    def _snapshot_files(self) -> list[Path]:
        return sorted(p for p in self.snap_dir.iterdir() if _SNAP_NAME.match(p.name))

    def _load_snapshot(self) -> Snapshot | None:
        for leftover in self.snap_dir.glob("*.tmp"):
            leftover.unlink()  # a snapshot whose write a crash interrupted: never referenced
        files = self._snapshot_files()
        if not files:
            return None
        path = files[-1]
        blob = path.read_bytes()
        if len(blob) < _SNAP_HEADER.size:
            raise WalCorrupted(path, 0, "snapshot file is truncated")
        magic, crc, size = _SNAP_HEADER.unpack_from(blob)
        body = blob[_SNAP_HEADER.size :]
        if magic != _SNAP_MAGIC or size != len(body) or zlib.crc32(body) != crc:
            raise WalCorrupted(path, 0, "snapshot checksum mismatch")
        r = Reader(body)
        meta = read_metadata(r)
        return Snapshot(meta, body[r.pos :])

    def release_to(self, index: int) -> None:
        """Delete segments whose every entry is at or below ``index`` (covered by a durable snapshot)."""
        segments = self._segments()
        for (_, _, path), (_, next_first, _) in zip(segments, segments[1:]):
            if next_first - 1 <= index:
                path.unlink()
            else:
                break
        _fsync_dir(self.wal_dir)
