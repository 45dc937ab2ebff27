"""Helpers for tests that run real ``shoald`` processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class Daemon:
    """A ``shoald`` child process with its own data and run roots."""

    def __init__(self, proc: subprocess.Popen[str], ready_file: Path, log_file: Path) -> None:
        self.proc = proc
        self.ready_file = ready_file
        self.log_file = log_file
        self.returncode: int | None = None

    @property
    def log(self) -> str:
        return self.log_file.read_text()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready_file.exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"shoald exited with {self.proc.returncode} before ready:\n{self.log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"shoald not ready after {timeout} s:\n{self.log}")
            time.sleep(0.01)

    def ready_info(self) -> dict:
        return json.loads(self.ready_file.read_text())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"shoald did not stop within {timeout} s after {sig!r}:\n{self.log}") from None
        self.returncode = self.proc.returncode
        return self.returncode


@contextmanager
def run_daemon(config: str | Path, tmp: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Daemon]:
    """Start shoald on ``config``; stop it with SIGTERM when the block ends."""
    run_root = tmp / "run"
    ready = run_root / "ready"
    log_file = tmp / "shoald.log"
    command = [sys.executable, "-m", "shoal.daemon", "--config", str(config), "--data-root", str(tmp / "data"),
               "--run-root", str(run_root), "--ready-file", str(ready), *args]  # fmt: skip
    with log_file.open("w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, text=True, env=env or dict(os.environ))
    daemon = Daemon(proc, ready, log_file)
    try:
        yield daemon
    finally:
        daemon.stop()


BUSYBOX = "/bin/busybox"


def make_busybox_rootfs(root: Path) -> None:
    """Populate ``root`` with Debian's static busybox, its applets and minimal /etc files."""
    (root / "bin").mkdir(parents=True)
    root.chmod(0o755)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    for name in ("proc", "dev", "sys", "etc", "tmp", "root"):
        (root / name).mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n"
    )
    (root / "etc" / "group").write_text("root:x:0:\nuser:x:1000:\nextra:x:2000:user\n")
    secret = root / "root" / "secret"
    secret.write_text("top secret\n")
    secret.chmod(0o600)
    (root / "root").chmod(0o755)


async def ensure_image(engine: Any, reference: str, rootfs: Path, config: dict[str, Any]) -> None:
    """Import ``rootfs`` as ``reference`` into the engine's image store unless it is there."""
    from shoal.errors import NotFound

    images = engine.slot("images")
    try:
        await images.get(reference)
    except NotFound:
        await images.import_rootfs(str(rootfs), reference, config)


async def remove_all_containers(engine: Any) -> None:
    """Containers outlive an engine (live restore): remove whatever a test left."""
    containers = engine.slot("containers")
    for summary in await containers.list(all=True):
        await containers.remove(summary["Id"], force=True)


def remove_cgroup_parent(parent: str) -> None:
    """Remove a test's cgroup parent (and empty children) from every v1 hierarchy."""
    for controller in Path("/sys/fs/cgroup").iterdir():
        leftover = controller / parent
        if leftover.is_dir():
            for child in leftover.iterdir():
                if child.is_dir():
                    child.rmdir()
            leftover.rmdir()
