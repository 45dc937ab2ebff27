"""Fixtures: a real engine (every one-host plugin) with a busybox image imported."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from shoal import open_engine
from shoal.config import parse_config
from shoaltest import ensure_image, remove_all_containers, remove_cgroup_parent

IMAGE = "busybox:test"


def engine_config(data: Path, cgroup_parent: str) -> str:
    return f"""
[engine]
data_root = "{data}"
run_root = "{data}/run"
[load]
enable = ["sqlite", "local-membership", "namespaces", "cgroups", "images", "overlay", "local-volumes", "engine"]
[plugins.cgroups]
parent = "{cgroup_parent}"
[plugins.sqlite]
synchronous = "normal"
"""


class EngineHarness:
    """Opens (and re-opens, for live restore) an engine on one data root."""

    def __init__(self, data: Path, busybox: Path) -> None:
        self.data = data
        self.busybox = busybox
        self.cgroup_parent = f"shoal-test-{secrets.token_hex(4)}"

    @asynccontextmanager
    async def open(self) -> AsyncIterator[object]:
        config = parse_config(engine_config(self.data, self.cgroup_parent))
        async with open_engine(config) as engine:
            await ensure_image(engine, IMAGE, self.busybox, {"Cmd": ["sh"]})
            yield engine


@pytest.fixture
async def harness(tmp_path: Path, busybox_dir: Path) -> AsyncIterator[EngineHarness]:
    h = EngineHarness(tmp_path / "data", busybox_dir)
    yield h
    async with h.open() as engine:
        await remove_all_containers(engine)
    remove_cgroup_parent(h.cgroup_parent)


@pytest.fixture
async def engine(harness: EngineHarness) -> AsyncIterator[object]:
    async with harness.open() as engine:
        yield engine


@pytest.fixture
def containers(engine: object) -> object:
    return engine.slot("containers")  # type: ignore[attr-defined]
