"""Fixtures for image store and snapshotter tests: a busybox rootfs, tar builders, and
clean-up of every mount made under a test's temporary directory, even on failure."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shoal.plugins.overlay.mounts import MNT_DETACH

BUSYBOX = "/bin/busybox"


def _mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``, from /proc/self/mountinfo."""
    prefix = str(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


@pytest.fixture
def mount_guard(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path``, with every mount left under it detached at the end."""
    yield tmp_path
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for point in reversed(_mounts_under(tmp_path)):
        libc.umount2(os.fsencode(point), MNT_DETACH)
    assert _mounts_under(tmp_path) == []


@pytest.fixture
def mounts_under() -> Callable[[Path], list[str]]:
    """A function listing the mount points at or below a path."""
    return _mounts_under


@pytest.fixture(scope="session")
def busybox() -> str:
    if not os.path.exists(BUSYBOX):
        subprocess.run(["apt-get", "install", "-y", "busybox-static"], check=True, capture_output=True)
    return BUSYBOX


@pytest.fixture
def busybox_dir(tmp_path: Path, busybox: str) -> Path:
    """A small root filesystem: busybox with a few applet links and some metadata to keep."""
    root = tmp_path / "busybox-rootfs"
    for sub in ("bin", "etc", "tmp", "root", "dev", "home/user"):
        (root / sub).mkdir(parents=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    for applet in ("sh", "echo", "cat", "ls", "true", "id", "stat"):
        os.symlink("busybox", root / "bin" / applet)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nuser:x:1000:\n")
    os.chmod(root / "tmp", 0o1777)
    os.chmod(root / "root", 0o700)
    os.chown(root / "home" / "user", 1000, 1000)
    (root / "etc" / "suid").write_text("x")
    os.chmod(root / "etc" / "suid", 0o4755)
    os.link(root / "etc" / "passwd", root / "etc" / "passwd-link")
    os.setxattr(root / "etc" / "group", "user.origin", b"test")
    os.mknod(root / "dev" / "null", 0o666 | 0o020000, os.makedev(1, 3))
    return root


class TarBuilder:
    """Builds layer tars member by member, including ones no sane tool would write."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buffer, mode="w", format=tarfile.PAX_FORMAT)

    def file(self, name: str, data: bytes = b"", mode: int = 0o644, uid: int = 0, **pax: str) -> TarBuilder:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, uid, uid, 1_700_000_000
        info.pax_headers = dict(pax)
        self.tar.addfile(info, io.BytesIO(data))
        return self

    def dir(self, name: str, mode: int = 0o755) -> TarBuilder:
        return self._entry(name, tarfile.DIRTYPE, mode=mode)

    def symlink(self, name: str, target: str) -> TarBuilder:
        return self._entry(name, tarfile.SYMTYPE, linkname=target, mode=0o777)

    def hardlink(self, name: str, target: str) -> TarBuilder:
        return self._entry(name, tarfile.LNKTYPE, linkname=target)

    def device(self, name: str, major: int, minor: int) -> TarBuilder:
        return self._entry(name, tarfile.CHRTYPE, devmajor=major, devminor=minor, mode=0o666)

    def fifo(self, name: str) -> TarBuilder:
        return self._entry(name, tarfile.FIFOTYPE)

    def _entry(self, name: str, kind: bytes, mode: int = 0o644, **attrs: object) -> TarBuilder:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = kind, mode, 1_700_000_000
        for key, value in attrs.items():
            setattr(info, key, value)
        self.tar.addfile(info)
        return self

    def bytes(self) -> bytes:
        self.tar.close()
        return self.buffer.getvalue()

    def write(self, path: Path) -> Path:
        path.write_bytes(self.bytes())
        return path


@pytest.fixture
def tar_builder() -> type[TarBuilder]:
    return TarBuilder
