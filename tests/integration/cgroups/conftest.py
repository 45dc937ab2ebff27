"""Real cgroup v1 groups for tests: a unique parent per test, removed at the end even on failure."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shoal.plugins.cgroups.layout import read_layout
from shoal.plugins.cgroups.resources import CgroupResources
from shoal.plugins.cgroups.v1 import V1Driver


class Harness:
    """A provider under a parent of its own, and the processes the test started."""

    def __init__(self) -> None:
        layout = read_layout()
        assert layout.v1, f"these tests need cgroup v1 controllers (layout: {layout.kind})"
        self.parent = f"shoal-test-{secrets.token_hex(4)}"
        self.driver = V1Driver(layout.v1, self.parent)
        self.resources = CgroupResources(self.driver)
        self.processes: list[subprocess.Popen[bytes]] = []

    def file(self, controller: str, name: str, filename: str) -> Path:
        return Path(self.driver.mounts[controller], self.parent, name, filename)

    def read(self, controller: str, name: str, filename: str) -> str:
        return self.file(controller, name, filename).read_text().strip()

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        """Start a process that waits for a line on stdin before doing its work."""
        process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.processes.append(process)
        return process

    def leftovers(self) -> list[str]:
        return [base for base in self.driver.parent_bases() if os.path.exists(os.path.join(base, self.parent))]

    def cleanup(self) -> None:
        # Thaw, then end what the test's processes left in its groups (their own children).
        for base in self.driver.parent_bases():
            top = Path(base, self.parent)
            if not top.is_dir():
                continue
            for group in (p for p in top.iterdir() if p.is_dir()):
                state = group / "freezer.state"
                if state.exists():
                    state.write_text("THAWED")
                for pid in (group / "cgroup.procs").read_text().split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.communicate()


@pytest.fixture
async def v1() -> AsyncIterator[Harness]:
    harness = Harness()
    try:
        yield harness
    finally:
        harness.cleanup()
        for base in harness.driver.parent_bases():
            top = Path(base, harness.parent)
            if top.is_dir():
                for group in (p for p in top.iterdir() if p.is_dir()):
                    await harness.resources.remove(group.name)
        harness.driver.remove_parent()
        assert harness.leftovers() == []
