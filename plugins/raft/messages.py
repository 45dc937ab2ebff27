"""The data Raft nodes exchange and hand to their driver: entries, messages, states, Ready.

Everything here is an immutable dataclass except ``Ready``, a batch the driver consumes once.
Sizes (``Entry.size``, ``Message.size``) estimate encoded bytes so batching can respect a
per-message byte budget whatever wire format the transport chooses.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field

#: Node id meaning "nobody" (no leader known, no vote cast).
NONE = 0

#: Bytes charged per entry and per message on top of their payloads (index, term, type, framing).
ENTRY_OVERHEAD = 24
MESSAGE_OVERHEAD = 64

#: Context of a vote request sent on a leadership transfer: voters in a leader lease still grant it.
CAMPAIGN_TRANSFER = b"transfer"


class EntryType(enum.IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry; ``data`` is opaque to Raft (empty for the no-op a new leader appends)."""

    term: int
    index: int
    data: bytes = b""
    type: EntryType = EntryType.NORMAL

    def size(self) -> int:
        return len(self.data) + ENTRY_OVERHEAD


class ConfChangeType(enum.IntEnum):
    ADD_VOTER = 0
    REMOVE_NODE = 1
    ADD_LEARNER = 2


@dataclass(frozen=True, slots=True)
class ConfChange:
    """A single membership change: add (or promote) one voter, add one learner, or remove one node."""

    type: ConfChangeType
    node_id: int
    context: bytes = b""

    _HEADER = struct.Struct(">BQ")

    def encode(self) -> bytes:
        return self._HEADER.pack(self.type, self.node_id) + self.context

    @classmethod
    def decode(cls, data: bytes) -> ConfChange:
        kind, node_id = cls._HEADER.unpack_from(data)
        return cls(ConfChangeType(kind), node_id, bytes(data[cls._HEADER.size :]))


@dataclass(frozen=True, slots=True)
class ConfState:
    """The membership a log prefix (or snapshot) implies: voting members and non-voting learners."""

    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SnapshotMetadata:
    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The application state as of ``metadata.index``, replacing every entry up to it."""

    metadata: SnapshotMetadata = field(default_factory=SnapshotMetadata)
    data: bytes = b""

    @property
    def index(self) -> int:
        return self.metadata.index

    @property
    def term(self) -> int:
        return self.metadata.term

    def is_empty(self) -> bool:
        return self.metadata.index == 0


@dataclass(frozen=True, slots=True)
class HardState:
    """What must be on stable storage before any message of the same Ready is sent."""

    term: int = 0
    vote: int = NONE
    commit: int = 0


class MessageType(enum.Enum):
    # Local inputs: never sent over the network.
    HUP = "hup"
    BEAT = "beat"
    CHECK_QUORUM = "check_quorum"
    UNREACHABLE = "unreachable"
    SNAP_STATUS = "snap_status"
    # Reads (a forwarded READ_INDEX carries term 0: it is not tied to the sender's term).
    READ_INDEX = "read_index"
    READ_INDEX_RESP = "read_index_resp"
    # Replication.
    APP = "app"
    APP_RESP = "app_resp"
    HEARTBEAT = "heartbeat"
    HEARTBEAT_RESP = "heartbeat_resp"
    SNAP = "snap"
    # Elections.
    VOTE = "vote"
    VOTE_RESP = "vote_resp"
    PRE_VOTE = "pre_vote"
    PRE_VOTE_RESP = "pre_vote_resp"
    # Leadership transfer.
    TRANSFER_LEADER = "transfer_leader"
    TIMEOUT_NOW = "timeout_now"


LOCAL_MESSAGES = frozenset(
    {MessageType.HUP, MessageType.BEAT, MessageType.CHECK_QUORUM, MessageType.UNREACHABLE, MessageType.SNAP_STATUS}
)


#: The context of an append that carries only a new commit index to a follower the leader has
#: sent every entry: a follower that accepts it does not answer (its answers to the entries
#: already tell the leader everything; heartbeats keep it informed of the follower otherwise).
COMMIT_ONLY = b"commit"


@dataclass(frozen=True, slots=True)
class Message:
    """A Raft message. Field meanings follow the type (e.g. ``index`` is the probe index of APP)."""

    type: MessageType
    to: int = NONE
    frm: int = NONE
    term: int = 0
    log_term: int = 0
    index: int = 0
    entries: tuple[Entry, ...] = ()
    commit: int = 0
    snapshot: Snapshot | None = None
    reject: bool = False
    reject_hint: int = 0
    context: bytes = b""

    def size(self) -> int:
        """Estimated encoded size; snapshot data counts too (the transport chunks it)."""
        total = MESSAGE_OVERHEAD + len(self.context) + sum(e.size() for e in self.entries)
        if self.snapshot is not None:
            total += len(self.snapshot.data)
        return total


class Role(enum.Enum):
    FOLLOWER = "follower"
    PRE_CANDIDATE = "pre-candidate"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True, slots=True)
class SoftState:
    """Volatile state worth reporting when it changes: who leads and this node's role."""

    lead: int = NONE
    role: Role = Role.FOLLOWER


@dataclass(frozen=True, slots=True)
class ReadState:
    """A linearizable read may be served once the node has applied ``index``; ``context`` names the request."""

    index: int
    context: bytes


@dataclass(slots=True)
class Ready:
    """Work for the driver, in this order: persist (snapshot, entries, hard state), send ``messages``,
    install ``snapshot`` and apply ``committed_entries``, serve ``read_states``; then ``advance``.
    """

    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    entries: list[Entry] = field(default_factory=list)
    snapshot: Snapshot | None = None
    committed_entries: list[Entry] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)
    read_states: list[ReadState] = field(default_factory=list)
    #: Whether the persisted part must be fsynced: entries, a snapshot, or a new term or vote
    #: (a commit index alone may be written lazily: it is recomputed after a restart).
    must_sync: bool = False
