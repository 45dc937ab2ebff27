"""Fixtures: a busybox root filesystem and an open namespaces isolation provider."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

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
