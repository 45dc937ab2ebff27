"""The gzip reader layers are unpacked through: members, padding, corruption, truncation."""

from __future__ import annotations

import gzip
import io
import os
import zlib

import pytest

from shoal.plugins.overlay.compression import GzipReader, decompressed, is_data_error


def _read_all(data: bytes, size: int) -> bytes:
    reader = decompressed(io.BytesIO(data))
    assert isinstance(reader, GzipReader)
    return b"".join(iter(lambda: reader.read(size), b""))


@pytest.mark.parametrize("size", [1, 512, 10240, 1 << 22])
def test_members_and_zero_padding_read_in_any_size(size: int) -> None:
    first, second = os.urandom(70_000), b"a" * 300_000
    data = gzip.compress(first) + b"\0" * 1000 + gzip.compress(second, mtime=0) + b"\0" * 7
    assert _read_all(data, size) == first + second


def test_highly_compressed_output_arrives_in_bounded_pieces() -> None:
    reader = GzipReader(io.BufferedReader(io.BytesIO(gzip.compress(bytes(50 << 20)))))  # type: ignore[arg-type]
    assert all(len(reader.read(1 << 30)) <= 4 << 20 for _ in range(3))


def test_corrupt_checksum_is_a_data_error() -> None:
    data = bytearray(gzip.compress(b"payload" * 1000))
    data[-8] ^= 0xFF  # the CRC-32 in the trailer
    with pytest.raises(zlib.error) as caught:
        _read_all(bytes(data), 4096)
    assert is_data_error(caught.value)


def test_truncated_stream_is_a_data_error() -> None:
    data = gzip.compress(os.urandom(100_000))
    with pytest.raises(EOFError) as caught:
        _read_all(data[: len(data) // 2], 4096)
    assert is_data_error(caught.value)
