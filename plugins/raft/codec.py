"""Binary encoding of Raft messages, entries and snapshot metadata (for the WAL and the wire).

Big-endian fixed-width integers followed by length-prefixed byte strings: cheap to encode with
``struct`` and unambiguous to decode. ``decode_*`` raise ``CodecError`` on malformed input, so
bytes from a peer or a disk never crash the reader with an ``IndexError``.
"""

from __future__ import annotations

import struct

from .errors import RaftError
from .messages import ConfState, Entry, EntryType, HardState, Message, MessageType, Snapshot, SnapshotMetadata

_MESSAGE_TYPES = list(MessageType)
_MESSAGE_INDEX = {t: i for i, t in enumerate(_MESSAGE_TYPES)}
_ENTRY_TYPES = sorted(EntryType, key=int)

_MSG = struct.Struct(">BQQQQQQQBI")  # type, to, frm, term, log_term, index, commit, reject_hint, reject, n entries
_ENTRY = struct.Struct(">QQBI")  # term, index, type, data length
_HARD = struct.Struct(">QQQ")
_META = struct.Struct(">QQHH")  # index, term, voter count, learner count
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class CodecError(RaftError):
    """Bytes that do not decode as what they claim to be."""


class Reader:
    """A cursor over bytes that raises ``CodecError`` instead of reading past the end."""

    def __init__(self, data: bytes | memoryview) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def unpack(self, fmt: struct.Struct) -> tuple:
        end = self.pos + fmt.size
        if end > len(self.data):
            raise CodecError(f"truncated input: needed {fmt.size} bytes at offset {self.pos}")
        values = fmt.unpack_from(self.data, self.pos)
        self.pos = end
        return values

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise CodecError(f"truncated input: needed {size} bytes at offset {self.pos}")
        out = bytes(self.data[self.pos : end])
        self.pos = end
        return out

    def blob(self) -> bytes:
        (size,) = self.unpack(_U32)
        return self.take(size)

    def done(self) -> None:
        if self.pos != len(self.data):
            raise CodecError(f"{len(self.data) - self.pos} unexpected trailing bytes")


def encode_entry(e: Entry, out: list[bytes]) -> None:
    out.append(_ENTRY.pack(e.term, e.index, e.type, len(e.data)))
    out.append(e.data)


def read_entry(r: Reader) -> Entry:
    term, index, kind, size = r.unpack(_ENTRY)
    if kind >= len(_ENTRY_TYPES):
        raise CodecError(f"unknown entry type {kind}")
    return Entry(term, index, r.take(size), _ENTRY_TYPES[kind])


def encode_hard_state(hs: HardState) -> bytes:
    return _HARD.pack(hs.term, hs.vote, hs.commit)


def decode_hard_state(data: bytes) -> HardState:
    r = Reader(data)
    term, vote, commit = r.unpack(_HARD)
    r.done()
    return HardState(term, vote, commit)


def encode_metadata(meta: SnapshotMetadata) -> bytes:
    cs = meta.conf_state
    ids = b"".join(_U64.pack(i) for i in (*cs.voters, *cs.learners))
    return _META.pack(meta.index, meta.term, len(cs.voters), len(cs.learners)) + ids


def read_metadata(r: Reader) -> SnapshotMetadata:
    index, term, n_voters, n_learners = r.unpack(_META)
    voters = tuple(r.unpack(_U64)[0] for _ in range(n_voters))
    learners = tuple(r.unpack(_U64)[0] for _ in range(n_learners))
    return SnapshotMetadata(index, term, ConfState(voters, learners))


def encode_message(m: Message) -> bytes:
    """A message as bytes; a snapshot travels with its data (the transport chunks it)."""
    out = [
        _MSG.pack(_MESSAGE_INDEX[m.type], m.to, m.frm, m.term, m.log_term, m.index, m.commit,
                  m.reject_hint, m.reject, len(m.entries)),
        _U32.pack(len(m.context)),
        m.context,
    ]  # fmt: skip
    for e in m.entries:
        encode_entry(e, out)
    if m.snapshot is None:
        out.append(b"\0")
    else:
        out.append(b"\1")
        out.append(encode_metadata(m.snapshot.metadata))
        out.append(_U64.pack(len(m.snapshot.data)))
        out.append(m.snapshot.data)
    return b"".join(out)


def decode_message(data: bytes | memoryview) -> Message:
    r = Reader(data)
    kind, to, frm, term, log_term, index, commit, hint, reject, n_entries = r.unpack(_MSG)
    if kind >= len(_MESSAGE_TYPES):
        raise CodecError(f"unknown message type {kind}")
    context = r.blob()
    entries = tuple(read_entry(r) for _ in range(n_entries))
    snapshot = None
    if r.take(1) == b"\1":
        meta = read_metadata(r)
        (size,) = r.unpack(_U64)
        snapshot = Snapshot(meta, r.take(size))
    r.done()
    return Message(_MESSAGE_TYPES[kind], to=to, frm=frm, term=term, log_term=log_term, index=index,
                   entries=entries, commit=commit, snapshot=snapshot, reject=bool(reject),
                   reject_hint=hint, context=context)  # fmt: skip
