"""In-process Raft clusters (real WALs, in-memory or TLS streams): partitions, snapshots, transports."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import trio

from shoal.plugins.raft.codec import CodecError, decode_message, encode_message
from shoal.plugins.raft.driver import DriverSettings
from shoal.plugins.raft.errors import NoQuorum
from shoal.plugins.raft.messages import ConfState, Entry, EntryType, Message, MessageType, Snapshot, SnapshotMetadata
from shoal.plugins.raft.network import CHUNK, MAX_FRAME, FrameReader, ProtocolError, snapshot_frames
from shoal.plugins.raft.testing import memory_cluster
from shoal.plugins.raft.transport import MemoryHub, TcpTransport, TlsTransport
from shoal.slots import Transport

from raft_procs import free_ports, make_certs

FAST = DriverSettings(tick_interval=0.01, request_timeout=1.0)


async def test_a_partitioned_minority_cannot_commit_and_catches_up_after_healing(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path, 3, settings=FAST) as cluster:
        leader = await cluster.wait_leader()
        await leader.store.create("thing", "before", {})
        lonely = next(m for m in cluster.members.values() if m is not leader)
        cluster.hub.disconnect(cluster.address(lonely.id))
        with pytest.raises(NoQuorum, match="no quorum: the write was not committed"):
            await lonely.store.create("thing", "lonely", {})
        with pytest.raises(NoQuorum, match="no quorum: the read could not be confirmed"):
            await lonely.store.get("thing", "before")
        await leader.store.create("thing", "majority", {})  # the two others still form a quorum
        cluster.hub.reconnect(cluster.address(lonely.id))
        with trio.fail_after(10):
            while True:
                try:
                    ids = [o.id for o in await lonely.store.list("thing")]
                    break
                except NoQuorum:
                    pass
        assert set(ids) - {"lonely"} == {"before", "majority"}


async def test_a_lagging_follower_gets_a_chunked_snapshot(tmp_path: Path) -> None:
    settings = DriverSettings(tick_interval=0.01, request_timeout=5.0, snapshot_entries=20, catchup_entries=2)
    async with memory_cluster(tmp_path, 3, settings=settings) as cluster:
        leader = await cluster.wait_leader()
        behind = next(i for i in cluster.ids if i != leader.id)
        cluster.stop(behind)
        blob = "x" * 40_000
        for n in range(80):  # about 3 MiB of state: a snapshot of several chunks
            await leader.store.create("thing", f"t{n:03}", {"blob": blob, "n": n})
        with trio.fail_after(10):  # snapshots are encoded in the background
            while leader.driver.storage.first_index() <= 20:
                await trio.sleep(0.01)
        member = await cluster.start(behind)
        with trio.fail_after(10):
            while member.driver.applied < leader.driver.applied:
                await trio.sleep(0.01)
        assert not member.driver.storage.snapshot().is_empty()
        assert len(await member.store.list("thing")) == 80
        assert (await member.store.get("thing", "t079")).data == {"blob": blob, "n": 79}
    # The follower restarts from its own snapshot and WAL.
    async with memory_cluster(tmp_path, 3, settings=settings) as cluster:
        await cluster.wait_leader()
        assert await cluster.members[behind].store.revision() == 80


def test_messages_round_trip_and_garbage_is_refused() -> None:
    snap = Snapshot(SnapshotMetadata(7, 2, ConfState((1, 2, 3), (4,))), b"state" * 1000)
    messages = [
        Message(MessageType.APP, to=2, frm=1, term=3, log_term=2, index=9, commit=8,
                entries=(Entry(3, 10, b"a"), Entry(3, 11, b"", EntryType.CONF_CHANGE))),
        Message(MessageType.APP_RESP, to=1, frm=2, term=3, index=5, reject=True, reject_hint=4),
        Message(MessageType.HEARTBEAT, to=2, frm=1, term=3, context=b"ctx"),
        Message(MessageType.SNAP, to=3, frm=1, term=3, snapshot=snap),
    ]  # fmt: skip
    for m in messages:
        assert decode_message(encode_message(m)) == m
    data = encode_message(messages[0])
    for bad in (data[:-1], data + b"x", b"\xff" + data[1:], b""):
        with pytest.raises(CodecError):
            decode_message(bad)


async def test_snapshots_travel_in_bounded_chunks_and_frames_are_bounded() -> None:
    snap = Snapshot(SnapshotMetadata(7, 2, ConfState((1, 2, 3))), bytes(range(256)) * 10_000)
    frames = snapshot_frames(Message(MessageType.SNAP, to=2, frm=1, term=2, snapshot=snap))
    assert len(frames) == 3 and all(len(f) <= CHUNK + 64 for f in frames)
    send, receive = trio.testing.memory_stream_pair()
    await send.send_all((MAX_FRAME + 1).to_bytes(4, "big") + b"\x02")
    with pytest.raises(ProtocolError, match="exceeds"):
        await FrameReader(receive).read()


async def _echo_pair(server: object, client: object, address: str) -> bytes:
    async def handler(stream: trio.abc.Stream, identity: str) -> None:
        await stream.send_all(identity.encode() + b":" + await stream.receive_some(100))

    async with trio.open_nursery() as nursery:
        listening = await nursery.start(server.serve, handler)  # type: ignore[attr-defined]
        stream = await client.connect(listening if address == "" else address)  # type: ignore[attr-defined]
        async with stream:
            await stream.send_all(b"ping")
            with trio.fail_after(5):
                answer = await stream.receive_some(100)
        nursery.cancel_scope.cancel()
    return answer


async def test_tls_transport_authenticates_both_ends(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "ok", [1, 2])
    (port,) = free_ports(1)
    server = TlsTransport(f"127.0.0.1:{port}", str(certs["cert1"]), str(certs["key1"]), str(certs["ca"]))
    client = TlsTransport("127.0.0.1:0", str(certs["cert2"]), str(certs["key2"]), str(certs["ca"]))
    assert isinstance(server, Transport)
    assert await _echo_pair(server, client, "") == b"node-2:ping"
    # A certificate from another CA is refused.
    strangers = make_certs(tmp_path / "other", [3])
    stranger = TlsTransport("127.0.0.1:0", str(strangers["cert3"]), str(strangers["key3"]), str(strangers["ca"]))
    (port,) = free_ports(1)
    server = TlsTransport(f"127.0.0.1:{port}", str(certs["cert1"]), str(certs["key1"]), str(certs["ca"]))
    with pytest.raises(BaseExceptionGroup) as info:
        await _echo_pair(server, stranger, "")
    assert info.group_contains(trio.BrokenResourceError)


async def test_tcp_and_memory_transports_fill_the_transport_slot() -> None:
    hub = MemoryHub()
    assert isinstance(hub.transport("a"), Transport) and isinstance(TcpTransport("127.0.0.1:0"), Transport)
    assert await _echo_pair(hub.transport("a"), hub.transport("b"), "a") == b"b:ping"
    assert await _echo_pair(TcpTransport("127.0.0.1:0"), TcpTransport("127.0.0.1:0"), "") == b":ping"


async def test_tls_streams_carry_large_writes_both_ways_at_once(tmp_path: Path) -> None:
    certs = make_certs(tmp_path, [1, 2])
    (port,) = free_ports(1)
    server = TlsTransport(f"127.0.0.1:{port}", str(certs["cert1"]), str(certs["key1"]), str(certs["ca"]))
    client = TlsTransport("127.0.0.1:0", str(certs["cert2"]), str(certs["key2"]), str(certs["ca"]))
    blob = bytes(range(256)) * 20_000  # far more than a TLS record and the socket buffers hold
    served = trio.Event()

    async def read_all(stream: trio.abc.Stream, size: int) -> bytes:
        data = bytearray()
        while len(data) < size:
            chunk = await stream.receive_some()
            assert chunk, "the stream ended early"
            data += chunk
        return bytes(data)

    async def echo(stream: trio.abc.Stream, identity: str) -> None:
        async with trio.open_nursery() as nursery:  # sends while it still receives
            nursery.start_soon(stream.send_all, blob[::-1])
            assert await read_all(stream, len(blob)) == blob
        assert identity == "node-2"
        assert await stream.receive_some() == b""  # the client closed: a clean end of stream
        served.set()

    async with trio.open_nursery() as nursery:
        listening = await nursery.start(server.serve, echo)
        with trio.fail_after(10):
            stream = await client.connect(listening)
            async with stream:
                async with trio.open_nursery() as both:
                    both.start_soon(stream.send_all, blob)
                    assert await read_all(stream, len(blob)) == blob[::-1]
            with pytest.raises(trio.ClosedResourceError):
                await stream.send_all(b"late")
            await served.wait()
        nursery.cancel_scope.cancel()


async def test_tls_send_nowait_takes_what_fits_and_a_retry_completes_it(tmp_path: Path) -> None:
    certs = make_certs(tmp_path, [1, 2])
    (port,) = free_ports(1)
    server = TlsTransport(f"127.0.0.1:{port}", str(certs["cert1"]), str(certs["key1"]), str(certs["ca"]))
    client = TlsTransport("127.0.0.1:0", str(certs["cert2"]), str(certs["key2"]), str(certs["ca"]))
    received = bytearray()
    reading = trio.Event()
    done = trio.Event()

    async def sink(stream: trio.abc.Stream, identity: str) -> None:
        await reading.wait()  # nothing is read until the sender had to stop
        while chunk := await stream.receive_some():
            received.extend(chunk)
        done.set()

    async with trio.open_nursery() as nursery:
        listening = await nursery.start(server.serve, sink)
        with trio.fail_after(10):
            stream = await client.connect(listening)
            sent = bytearray()
            piece = 0
            while True:  # small writes go out whole until the socket buffers are full
                data = bytes([piece % 251]) * 4000
                taken = stream.send_nowait(data)  # type: ignore[attr-defined]
                if taken < len(data):
                    break
                sent += data
                piece += 1
            assert taken == 0 and sent
            reading.set()
            await stream.send_all(data)  # the same bytes first, as OpenSSL asks
            await stream.aclose()
            await done.wait()
        assert received == sent + data
        nursery.cancel_scope.cancel()


async def test_snapshots_wait_for_log_bytes_in_proportion_to_their_size(tmp_path: Path) -> None:
    settings = DriverSettings(tick_interval=0.01, request_timeout=5.0, snapshot_entries=10, catchup_entries=2)
    async with memory_cluster(tmp_path, 3, settings=settings) as cluster:
        leader = await cluster.wait_leader()
        storage = leader.driver.storage
        blob = "x" * 10_000

        async def snapshot_after(index: int) -> Snapshot:
            with trio.fail_after(5):
                while storage.snapshot().index <= index:
                    await trio.sleep(0.01)
            return storage.snapshot()

        for n in range(16):  # until the first snapshot (10 entries plus up to half again)
            await leader.store.create("thing", f"big{n}", {"blob": blob})
            if storage.snapshot().index:
                break
        first = await snapshot_after(0)
        for n in range(30):  # enough entries, but few bytes next to the snapshot's
            await leader.store.create("thing", f"small{n}", {"n": n})
        await trio.sleep(0.1)
        assert storage.snapshot().index == first.index
        for n in range(len(first.data) // (2 * len(blob)) + 1):
            await leader.store.create("thing", f"more{n}", {"blob": blob})
        assert (await snapshot_after(first.index)).index > first.index + 30


async def test_members_draw_their_snapshot_points_apart(tmp_path: Path) -> None:
    # Members apply the same entries: with one fixed count they would all snapshot (and slow
    # down) at the same moment.
    settings = DriverSettings(tick_interval=0.01, request_timeout=5.0, snapshot_entries=10)
    async with memory_cluster(tmp_path, 3, settings=settings) as cluster:
        draws = [m.driver._next_snapshot_due() for m in cluster.members.values() for _ in range(10)]
        assert all(10 <= d <= 15 for d in draws) and len(set(draws)) > 1


async def test_slow_fsyncs_move_to_a_worker_thread_and_fast_ones_come_back(tmp_path: Path) -> None:
    async with memory_cluster(tmp_path, 3, settings=FAST) as cluster:
        leader = await cluster.wait_leader()
        storage = leader.driver.storage
        fast_sync = storage.sync
        threads: list[int] = []

        def sync(delay: float) -> None:
            threads.append(threading.get_ident())
            time.sleep(delay)
            fast_sync()

        storage.sync = lambda: sync(0.02)  # type: ignore[method-assign]
        for n in range(5):
            await leader.store.create("thing", f"slow{n}", {})
        assert threads[0] == threading.get_ident(), "fsyncs start on the loop's thread"
        assert threads[-1] != threading.get_ident(), "slow ones move to a worker thread"
        storage.sync = lambda: sync(0)  # type: ignore[method-assign]
        for n in range(30):
            await leader.store.create("thing", f"fast{n}", {})
        assert threads[-1] == threading.get_ident()
