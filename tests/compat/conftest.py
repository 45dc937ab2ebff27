"""A real shoald on the one-host preset, with a busybox image imported, for real clients."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.presets import preset_dir
from shoaltest import BUSYBOX, Daemon, make_busybox_rootfs, run_daemon

from compat_support import IMAGE, docker_env


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed (apt-get install -y busybox-static)")
    root = tmp_path_factory.mktemp("busybox")
    make_busybox_rootfs(root / "fs")
    tar = root / "rootfs.tar"
    with tarfile.open(tar, "w") as archive:
        for entry in sorted((root / "fs").iterdir()):
            archive.add(entry, arcname=entry.name)
    return tar


@pytest.fixture(scope="session")
def shoald(tmp_path_factory: pytest.TempPathFactory, busybox_tar: Path) -> Iterator[Daemon]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    tmp = tmp_path_factory.mktemp("shoald")
    parent = f"shoal-test-{secrets.token_hex(4)}"
    config = tmp / "shoal.toml"
    config.write_text(f'extend = "{preset_dir() / "default.toml"}"\n[plugins.cgroups]\nparent = "{parent}"\n')
    with run_daemon(config, tmp) as daemon:
        daemon.wait_ready()
        daemon.socket = tmp / "run" / "shoal.sock"  # type: ignore[attr-defined]
        env = docker_env(daemon)
        if shutil.which("docker"):
            subprocess.run(["docker", "import", "--change", "CMD [\"sh\"]", str(busybox_tar), IMAGE], env=env, check=True,
                           capture_output=True)  # fmt: skip
        else:
            import docker

            client = docker.DockerClient(base_url=f"unix://{daemon.socket}")  # type: ignore[attr-defined]
            client.images.import_image(str(busybox_tar), repository="busybox", tag="compat", changes=['CMD ["sh"]'])
        yield daemon
        remove_all(daemon)
    assert daemon.returncode == 0, daemon.log


def remove_all(daemon: Daemon) -> None:
    import docker

    client = docker.DockerClient(base_url=f"unix://{daemon.socket}")  # type: ignore[attr-defined]
    for container in client.containers.list(all=True):
        container.remove(force=True)
    client.close()
