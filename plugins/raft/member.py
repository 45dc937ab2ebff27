"""One Raft member of a ``shoald`` manager: storage, network, driver, store and control socket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from shoal.errors import InvalidArgument

from .config import RaftConfig
from .control import serve_control
from .disk_storage import DiskStorage
from .driver import DriverSettings, RaftDriver
from .network import Peers
from .store import RaftStore
from .transport import TcpTransport, TlsTransport


def parse_peers(entries: list[str] | tuple[str, ...]) -> dict[int, str]:
    """``["1=10.0.0.1:4280", ...]`` as {id: address}; raises ``InvalidArgument`` naming the bad entry."""
    peers: dict[int, str] = {}
    for entry in entries:
        ident, sep, address = entry.partition("=")
        if not sep or not ident.strip().isdigit() or int(ident) <= 0 or ":" not in address:
            raise InvalidArgument(f"peers: {entry!r} is not ID=HOST:PORT with a positive ID")
        if int(ident) in peers:
            raise InvalidArgument(f"peers: node id {ident} is listed twice")
        peers[int(ident)] = address.strip()
    return peers


class RaftMember:
    """Everything one member runs; ``run`` is the plugin's service."""

    def __init__(self, settings: Any, data_dir: Path, run_root: Path) -> None:
        peers = parse_peers(settings.peers) or {settings.node_id: settings.listen}
        if settings.join:
            if not set(peers) - {settings.node_id}:
                raise InvalidArgument("join: list at least one member of the cluster to join in peers")
            peers.setdefault(settings.node_id, settings.listen)
        elif settings.node_id not in peers:
            raise InvalidArgument(f"peers: this node ({settings.node_id}) must be listed among the peers")
        tls_files = (settings.cert_file, settings.key_file, settings.ca_file)
        if settings.insecure:
            transport: Any = TcpTransport(settings.listen)
        elif all(tls_files):
            for name, path in zip(("cert_file", "key_file", "ca_file"), tls_files):
                if not Path(path).is_file():
                    raise InvalidArgument(f"{name}: {path} does not exist or is not a file")
            transport = TlsTransport(settings.listen, *tls_files)
        else:
            raise InvalidArgument("cert_file, key_file and ca_file are all required (or insecure = true for tests)")
        self.cluster_id = settings.cluster_id
        self.control_path = Path(settings.control_socket) if settings.control_socket else run_root / "raft.sock"
        config = RaftConfig(
            id=settings.node_id,
            election_tick=settings.election_ticks,
            heartbeat_tick=settings.heartbeat_ticks,
            max_entry_bytes=settings.max_entry_bytes,
        )
        self.storage = DiskStorage.open(Path(settings.data_dir) if settings.data_dir else data_dir,
                                        settings.cluster_id, settings.node_id)  # fmt: skip
        if not settings.join:
            self.storage.bootstrap(sorted(peers))
        self.store = RaftStore(settings.history)

        def network(driver: RaftDriver) -> Peers:
            return Peers(transport, settings.node_id, settings.cluster_id, peers, driver)

        driver_settings = DriverSettings(
            tick_interval=settings.tick_interval,
            request_timeout=settings.request_timeout,
            snapshot_entries=settings.snapshot_entries,
            freeze_gc=settings.freeze_gc,
        )
        self.driver = RaftDriver(config, self.storage, self.store, network, driver_settings,
                                 address=peers[settings.node_id], join=settings.join)  # fmt: skip
        self.store.attach(self.driver)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(self.driver.run)
                await nursery.start(serve_control, self.control_path, self.store, self.driver, self.cluster_id)
                task_status.started()
        finally:
            self.close()

    def close(self) -> None:
        self.store.close()
        self.storage.close()
