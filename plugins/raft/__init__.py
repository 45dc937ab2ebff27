"""Raft consensus for swarm managers, and the replicated ``raft`` store provider.

``node.RaftNode`` is a pure, synchronous Raft state machine: time advances only through
``tick()``, randomness comes from an injected ``random.Random``, and everything it wants done
(persist, send, apply) is handed out as a ``Ready`` batch that a driver processes before calling
``advance()``. Around it: ``messages`` (the data exchanged), ``log`` and ``storage`` (the log
over a ``Storage``; ``MemoryStorage`` in memory), ``progress`` and ``readonly`` (leader
bookkeeping), ``config`` (tuning). For testing: ``sim`` drives a cluster over a faulty network,
``invariants`` checks Raft's safety properties while it runs, ``scenario`` runs seeded
fault-injection scenarios, and ``linearizability`` checks client histories.

The running member: ``wal`` and ``disk_storage`` (durable log and snapshots), ``transport``,
``tls_socket`` and ``network`` (TLS/TCP or in-memory streams, framing), ``driver`` (the trio
Ready/Advance loop) with ``collector`` (short garbage collector pauses), ``objects`` and
``store`` (the replicated versioned object store), ``control`` (a local status and request
socket), ``member`` (all of it for one daemon). This module is only the plugin's registration
glue.
"""

from __future__ import annotations

from dataclasses import dataclass

from shoal import Plugin, PluginContext, setting


@dataclass(frozen=True)
class RaftSettings:
    """Settings of a Raft member (a swarm manager)."""

    node_id: int = setting(1, "This member's id: a positive integer, unique in the cluster.")
    cluster_id: str = setting("shoal", "Name of the cluster; a member refuses data and peers of another cluster.")
    listen: str = setting("127.0.0.1:4280", "HOST:PORT the member listens on for its peers.")
    peers: list[str] = setting(factory=list, doc="Every member as ID=HOST:PORT, this one included; empty: a cluster of one.")
    join: bool = setting(False, "Join the running cluster of the listed peers (it adds this node) instead of forming one.")
    data_dir: str = setting("", "WAL and snapshot directory; empty: the plugin's data directory.")
    cert_file: str = setting("", "PEM certificate this member presents to its peers.")
    key_file: str = setting("", "PEM private key of cert_file.")
    ca_file: str = setting("", "PEM CA certificate(s) that peers' certificates must be signed by.")
    insecure: bool = setting(False, "Plain TCP without TLS; only for tests on loopback.")
    tick_interval: float = setting(0.05, "Seconds per Raft tick.")
    election_ticks: int = setting(8, "Ticks without a leader before an election (randomised up to twice that).")
    heartbeat_ticks: int = setting(1, "Ticks between the leader's heartbeats.")
    request_timeout: float = setting(5.0, "Seconds a write or read waits for a quorum before failing with 'no quorum'.")
    snapshot_entries: int = setting(10000, "Applied entries between snapshots, at least, plus up to half again at "
                                    "random so members do not snapshot together (the log is compacted after each); "
                                    "a snapshot also waits for entries of half as many bytes as the last one.")
    max_entry_bytes: int = setting(1 << 20, "Largest write accepted, in bytes of its encoded form.")
    history: int = setting(10000, "Revisions of changes kept for watch replay.")
    freeze_gc: bool = setting(True, "Every 1000 applied entries, exempt the objects alive then from the garbage "
                              "collector's full passes (gc.freeze), which a large store makes long.")
    control_socket: str = setting("", "Unix socket for `shoal raft status`; empty: raft.sock in the run root.")


async def setup(ctx: PluginContext) -> object:
    from .member import RaftMember

    member = RaftMember(ctx.config, ctx.data_dir, ctx.run_root)
    ctx.add_service("raft", member.run)
    return member.store


plugin = Plugin(
    name="raft",
    summary="Replicated versioned object store over Raft (swarm managers).",
    slot="store",
    config=RaftSettings,
    setup=setup,
)
