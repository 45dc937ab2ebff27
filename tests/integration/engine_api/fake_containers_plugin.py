"""A plugin filling the ``containers`` slot with the in-memory fake of the unit tests."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from shoal import Plugin, PluginContext

_FAKE = Path(__file__).resolve().parents[2] / "unit" / "engine_api" / "fake_engine.py"


def _fake_module():
    spec = importlib.util.spec_from_file_location("engine_api_fake_engine", _FAKE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


@asynccontextmanager
async def setup(ctx: PluginContext) -> AsyncIterator[object]:
    async with trio.open_nursery() as nursery:
        yield _fake_module().FakeContainers(nursery, ctx.events)
        nursery.cancel_scope.cancel()


plugin = Plugin(name="fake-containers", summary="In-memory containers for tests.", slot="containers", setup=setup)
