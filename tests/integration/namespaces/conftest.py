"""Fixtures: a busybox root filesystem and an open namespaces isolation provider."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shoaltest import BUSYBOX, make_busybox_rootfs


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed (apt-get install -y busybox-static)")
    root = tmp_path_factory.mktemp("rootfs")
    make_busybox_rootfs(root)
    yield root


@pytest.fixture
async def isolation(tmp_path: Path) -> AsyncIterator[object]:
    from shoal.plugins.namespaces.isolation import NamespaceIsolation

    async with NamespaceIsolation(tmp_path / "state") as iso:
        yield iso
