"""Helpers for tests (and the benchmark) that run Raft managers as real ``shoald`` processes."""

from __future__ import annotations

import datetime
import ipaddress
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from shoal.plugins.raft.control import ControlClient, ControlError

ROOT = Path(__file__).resolve().parents[3]


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def make_certs(directory: Path, ids: list[int]) -> dict[str, Path]:
    """A CA and one certificate per node (CN=node-ID), as PEM files in ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("test-ca")).issuer_name(name("test-ca"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))  # fmt: skip
    files = {"ca": directory / "ca.pem"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for node_id in ids:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder().subject_name(name(f"node-{node_id}")).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                .sign(ca_key, hashes.SHA256()))  # fmt: skip
        files[f"cert{node_id}"] = directory / f"node{node_id}.pem"
        files[f"key{node_id}"] = directory / f"node{node_id}-key.pem"
        files[f"cert{node_id}"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_key(key, files[f"key{node_id}"])
    return files


class Manager:
    """One ``shoald`` manager process with its own config, data and run roots."""

    def __init__(self, root: Path, node_id: int, config: Path) -> None:
        self.root = root
        self.id = node_id
        self.config = config
        self.proc: subprocess.Popen[str] | None = None
        self.socket = root / "run" / "raft.sock"

    @property
    def log(self) -> str:
        path = self.root / "shoald.log"
        return path.read_text() if path.exists() else ""

    def start(self) -> None:
        ready = self.root / "run" / "ready"
        ready.unlink(missing_ok=True)
        command = [sys.executable, "-m", "shoal.daemon", "--config", str(self.config), "--data-root",
                   str(self.root / "data"), "--run-root", str(self.root / "run"), "--ready-file", str(ready),
                   "--log-level", "info"]  # fmt: skip
        with (self.root / "shoald.log").open("a") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=ROOT)

    def wait_ready(self, timeout: float = 20.0) -> None:
        ready = self.root / "run" / "ready"
        deadline = time.monotonic() + timeout
        while not ready.exists():
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"manager {self.id} exited with {self.proc.returncode}:\n{self.log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"manager {self.id} not ready after {timeout} s:\n{self.log}")
            time.sleep(0.01)

    def wait_exit(self, timeout: float = 20.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """kill -9."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self, timeout: float = 30.0) -> ControlClient:
        return ControlClient(self.socket, timeout)

    def call(self, request: dict[str, Any], timeout: float = 30.0) -> Any:
        with self.client(timeout) as c:
            return c.call(request)

    def status(self) -> dict[str, Any]:
        return self.call({"op": "status"}, timeout=5)


class Cluster(ExitStack):
    """``size`` managers on loopback; a context manager that stops every process it started."""

    def __init__(self, root: Path, size: int, *, tls: bool = True, cluster_id: str = "itest",
                 request_timeout: float = 2.0, tick_interval: float = 0.02, extra: str = "") -> None:  # fmt: skip
        super().__init__()
        self.root = root
        self.tls = tls
        self.settings = (f'cluster_id = "{cluster_id}"\nrequest_timeout = {request_timeout}\n'
                         f"tick_interval = {tick_interval}\n{extra}\n")  # fmt: skip
        ids = list(range(1, size + 1))
        self.ports = dict(zip(ids, free_ports(size)))
        self.certs = make_certs(root / "certs", list(range(1, size + 3))) if tls else {}
        self.managers: dict[int, Manager] = {}
        for node_id in ids:
            self.managers[node_id] = self._manager(node_id, self.ports)

    def _manager(self, node_id: int, ports: dict[int, int], join: bool = False) -> Manager:
        node_root = self.root / f"m{node_id}"
        node_root.mkdir(parents=True, exist_ok=True)
        certs = self.certs
        security = (f'cert_file = "{certs[f"cert{node_id}"]}"\nkey_file = "{certs[f"key{node_id}"]}"\n'
                    f'ca_file = "{certs["ca"]}"' if self.tls else "insecure = true")  # fmt: skip
        peers = ", ".join(f'"{i}=127.0.0.1:{p}"' for i, p in ports.items())
        config = node_root / "manager.toml"
        config.write_text(
            "version = 1\n[load]\nenable = [\"local-membership\", \"raft\"]\n"
            "required = [\"raft\"]\n[slots]\nstore = \"raft\"\n[plugins.raft]\n"
            f'node_id = {node_id}\nlisten = "127.0.0.1:{ports[node_id]}"\npeers = [{peers}]\njoin = {str(join).lower()}\n'
            f"{security}\n{self.settings}"
        )
        return Manager(node_root, node_id, config)

    def join(self, node_id: int) -> Manager:
        """Start a new manager that joins the running cluster (certificates exist for two extra ids)."""
        (port,) = free_ports(1)
        manager = self._manager(node_id, {**self.ports, node_id: port}, join=True)
        self.ports[node_id] = port
        self.managers[node_id] = manager
        self.callback(manager.kill)
        manager.start()
        manager.wait_ready()
        return manager

    def __enter__(self) -> Cluster:
        super().__enter__()
        for m in self.managers.values():
            self.callback(m.kill)
            m.start()
        for m in self.managers.values():
            m.wait_ready()
        return self

    def leader(self, timeout: float = 10.0, exclude: tuple[int, ...] = ()) -> Manager:
        """The manager a quorum follows (waits for an election)."""
        deadline = time.monotonic() + timeout
        while True:
            for m in self.managers.values():
                if m.alive and m.id not in exclude:
                    try:
                        st = m.status()
                    except (OSError, ControlError):
                        continue
                    if st["state"] == "leader" and st["quorum"]:
                        return m
            if time.monotonic() > deadline:
                raise AssertionError("no leader elected in time:\n" + "\n".join(m.log[-3000:] for m in self.managers.values()))
            time.sleep(0.02)


def put(m: Manager, kind: str, id: str, data: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    (obj,) = m.call({"op": "commit", "ops": [{"op": "create", "kind": kind, "id": id, "data": data}]}, timeout)
    return obj


__all__ = ["Cluster", "ControlError", "Manager", "free_ports", "make_certs", "put"]
