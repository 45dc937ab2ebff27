"""The frontend served on a real unix socket in a temporary directory, over a fake engine."""

from __future__ import annotations

import functools
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
from fake_engine import FakeContainers, Served

from shoal.events import EventBus
from shoal.plugins.engine_api.app import Api, build_routes
from shoal.plugins.engine_api.server import ApiServer, serve


@pytest.fixture
def short_tmp() -> AsyncIterator[Path]:
    # Unix socket paths are limited to 107 bytes: pytest's tmp_path can be longer.
    path = Path(tempfile.mkdtemp(prefix="eapi-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def served(nursery: trio.Nursery, short_tmp: Path) -> Served:
    events = EventBus()
    engine = FakeContainers(nursery, events)
    api = Api(containers=engine, events=events, data_root=short_tmp, stats_interval=0.05)
    socket = str(short_tmp / "shoal.sock")
    await nursery.start(functools.partial(serve, ApiServer(build_routes(api)), socket))
    return Served(socket, api, engine)
