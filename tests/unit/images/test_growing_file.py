"""The reader a layer unpack follows a download through: it never reads past what the
writer announced, ends only at the announced end, and notices truncation and abandonment."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from shoal.plugins.overlay.unpack import Abandoned, GrowingFile


def _reader(path: Path, control: bytes) -> GrowingFile:
    return GrowingFile(os.open(path, os.O_RDONLY), io.BytesIO(control))


def test_reads_only_announced_bytes_and_ends_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"0123456789")  # bytes past the announced end are never read
    reader = _reader(path, b"4\n2\nend 7\n")
    try:
        buffered = io.BufferedReader(reader, 3)
        assert buffered.read(3) == b"012"
        assert buffered.read() == b"3456"
        assert buffered.read() == b""
    finally:
        os.close(reader._fd)


def test_a_file_shorter_than_announced_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"abc")
    reader = _reader(path, b"10\n")
    try:
        with pytest.raises(OSError, match="shorter"):
            reader.read(10)
    finally:
        os.close(reader._fd)


def test_control_ending_without_end_means_abandoned(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"abcdef")
    reader = _reader(path, b"2\n")
    try:
        assert reader.read(10) == b"ab"
        with pytest.raises(Abandoned):
            reader.read(10)
    finally:
        os.close(reader._fd)
