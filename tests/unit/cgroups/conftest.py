"""A fake cgroup2 filesystem: a tmp directory that behaves like the kernel's cgroupfs.

``FakeCgroup2`` lays out a root group with the files the kernel has, and on ``mkdir`` fills a
new group with the control files of the controllers its parent enabled in
cgroup.subtree_control. Writes to subtree_control add or remove controllers, rmdir refuses a
group with processes, and (when ``settle_freeze`` is on) writing cgroup.freeze updates
cgroup.events the way the kernel does once every task has stopped.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from shoal.plugins.cgroups.fs import CgroupFs

ALL = ("cpu", "cpuset", "io", "memory", "pids")


class FakeCgroup2(CgroupFs):
    def __init__(self, root: Path, controllers: tuple[str, ...] = ALL, *, swap: bool = True, bfq: bool = False):
        self.root = root
        self.swap = swap
        self.bfq = bfq
        self.settle_freeze = True
        self.writes: list[tuple[str, str]] = []
        root.mkdir(exist_ok=True)
        self._put(root, "cgroup.controllers", " ".join(controllers))
        self._put(root, "cgroup.subtree_control", "")
        self._put(root, "cgroup.procs", "1\n")
        self._put(root, "cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n")
        self._put(root, "cpuset.cpus.effective", "0-3")
        self._put(root, "cpuset.mems.effective", "0")

    @staticmethod
    def _put(directory: Path, name: str, text: str) -> None:
        (directory / name).write_text(text)

    def rel(self, path: str) -> str:
        return os.path.relpath(path, self.root)

    def mkdir(self, path: str) -> None:
        os.mkdir(path)
        d = Path(path)
        enabled = (d.parent / "cgroup.subtree_control").read_text().split()
        files = {
            "cgroup.controllers": " ".join(enabled),
            "cgroup.subtree_control": "",
            "cgroup.procs": "",
            "cgroup.freeze": "0",
            "cgroup.events": "populated 0\nfrozen 0\n",
            "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
        }
        if "memory" in enabled:
            files |= {
                "memory.max": "max",
                "memory.low": "0",
                "memory.current": "0",
                "memory.stat": "anon 0\nfile 0\n",
                "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
            }
            if self.swap:
                files["memory.swap.max"] = "max"
        if "cpu" in enabled:
            files |= {"cpu.weight": "100", "cpu.max": "max 100000"}
        if "cpuset" in enabled:
            files |= {"cpuset.cpus": "", "cpuset.mems": "", "cpuset.cpus.effective": "0-3"}
        if "pids" in enabled:
            files |= {"pids.max": "max", "pids.current": "0"}
        if "io" in enabled:
            files |= {"io.stat": "", "io.weight": "default 100"}
            if self.bfq:
                files["io.bfq.weight"] = "default 100"
        for name, text in files.items():
            self._put(d, name, text)

    def rmdir(self, path: str) -> None:
        d = Path(path)
        if not d.is_dir():
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        if (d / "cgroup.procs").read_text().strip() or any(p.is_dir() for p in d.iterdir()):
            raise OSError(errno.EBUSY, "Device or resource busy", path)
        for p in d.iterdir():
            p.unlink()
        d.rmdir()

    def write(self, path: str, value: str) -> None:
        self.writes.append((self.rel(path), value))
        p = Path(path)
        if p.name == "cgroup.subtree_control":
            available = set((p.parent / "cgroup.controllers").read_text().split())
            enabled = set(p.read_text().split())
            for token in value.split():
                if token[1:] not in available:
                    raise OSError(errno.ENOENT, "No such file or directory", path)
                (enabled.add if token[0] == "+" else enabled.discard)(token[1:])
            p.write_text(" ".join(sorted(enabled)))
            return
        super().write(path, value)
        if p.name == "cgroup.freeze" and self.settle_freeze:
            self.set_events(p.parent, frozen=int(value))

    @staticmethod
    def set_events(directory: Path, *, frozen: int) -> None:
        (directory / "cgroup.events").write_text(f"populated 1\nfrozen {frozen}\n")


@pytest.fixture
def fake(tmp_path: Path) -> FakeCgroup2:
    return FakeCgroup2(tmp_path / "cgroup")


@pytest.fixture
def make_fake(tmp_path: Path):
    """Build a fake hierarchy with chosen controllers, swap accounting and BFQ."""

    made = 0

    def make(controllers: tuple[str, ...] = ALL, *, swap: bool = True, bfq: bool = False) -> FakeCgroup2:
        nonlocal made
        made += 1
        return FakeCgroup2(tmp_path / f"cgroup{made}", controllers, swap=swap, bfq=bfq)

    return make
