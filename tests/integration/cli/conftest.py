"""A fake daemon on a unix socket for every CLI test, with ``$SHOAL_HOST`` pointing at it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

from .fakedaemon import FakeDaemon


@pytest.fixture
def daemon(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDaemon]:
    # A short directory: unix socket paths are limited to 108 bytes.
    directory = tempfile.mkdtemp(prefix="shoal-cli-")
    path = os.path.join(directory, "shoal.sock")
    monkeypatch.setenv("SHOAL_HOST", f"unix://{path}")
    try:
        with FakeDaemon(path) as fake:
            yield fake
    finally:
        shutil.rmtree(directory)


def run_cli(*argv: str, input: bytes | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``shoal ARGV`` as a child process (stdin, exit codes and signals as a user sees them)."""
    return subprocess.run([sys.executable, "-m", "shoal.cli", *argv], input=input, capture_output=True, timeout=20,
                          env={**os.environ, **(env or {})})  # fmt: skip
