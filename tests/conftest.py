"""Shared test set-up: the ``root`` marker.

Tests marked ``root`` exercise real kernel features. They are skipped only when not running
as root; running as root, a skipped ``root`` test fails the session, so a green run as root
proves they all ran.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

IS_ROOT = os.geteuid() == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if IS_ROOT:
        return
    skip = pytest.mark.skip(reason="needs root")
    for item in items:
        if item.get_closest_marker("root"):
            item.add_marker(skip)


_skipped_as_root: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if IS_ROOT and report.skipped and "root" in report.keywords:
        _skipped_as_root.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _skipped_as_root:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skipped_as_root:
        terminalreporter.write_line("root tests were skipped while running as root:", red=True)
        for nodeid in _skipped_as_root:
            terminalreporter.write_line(f"  {nodeid}", red=True)


#: Host settings a daemon under test may change (the bridge driver turns on forwarding, as
#: Docker does); the session puts them back as it found them.
_HOST_SYSCTLS = ("/proc/sys/net/ipv4/ip_forward",)


@pytest.fixture(scope="session", autouse=True)
def _restore_host_sysctls() -> Iterator[None]:
    saved = {path: Path(path).read_text() for path in _HOST_SYSCTLS if Path(path).exists()}
    yield
    if IS_ROOT:
        for path, value in saved.items():
            Path(path).write_text(value)


@pytest.fixture(scope="session")
def busybox_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root filesystem of Debian's busybox-static with its applets (see shoaltest)."""
    from shoaltest import BUSYBOX, make_busybox_rootfs

    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed (apt-get install -y busybox-static)")
    root = tmp_path_factory.mktemp("busybox")
    make_busybox_rootfs(root)
    return root
