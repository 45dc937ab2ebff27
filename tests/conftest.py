"""Shared test set-up: the ``root`` marker.

Tests marked ``root`` exercise real kernel features. They are skipped only when not running
as root; running as root, a skipped ``root`` test fails the session, so a green run as root
proves they all ran.
"""

from __future__ import annotations

import os

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
