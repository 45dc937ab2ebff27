"""The multiplexed-stream decoder and the ``docker stats`` arithmetic."""

from __future__ import annotations

import pytest

from shoal.cli.frames import STDERR, STDOUT, FrameDecoder, FrameError, encode_frame
from shoal.cli.stats_calc import block_io, cpu_percent, memory_usage, network_io, stats_row


def test_frame_header_layout() -> None:
    assert encode_frame(STDERR, b"hi") == b"\x02\x00\x00\x00\x00\x00\x00\x02hi"


def test_decoder_handles_frames_split_anywhere() -> None:
    stream = encode_frame(STDOUT, b"hello ") + encode_frame(STDERR, b"oops\n") + encode_frame(STDOUT, b"") + \
        encode_frame(STDOUT, b"x" * 70000)  # fmt: skip
    for step in (1, 3, 8, 9, 1000, len(stream)):
        decoder, frames = FrameDecoder(), []
        for start in range(0, len(stream), step):
            frames += decoder.feed(stream[start : start + step])
        assert frames == [(STDOUT, b"hello "), (STDERR, b"oops\n"), (STDOUT, b""), (STDOUT, b"x" * 70000)]
        assert decoder.pending == 0


def test_decoder_keeps_an_incomplete_frame() -> None:
    decoder = FrameDecoder()
    assert list(decoder.feed(encode_frame(STDOUT, b"abc")[:-1])) == []
    assert decoder.pending == 10


def test_decoder_rejects_a_raw_stream() -> None:
    with pytest.raises(FrameError, match="unknown stream 104"):
        list(FrameDecoder().feed(b"hello world"))


V1_SAMPLE = {
    "id": "f" * 64,
    "name": "/web",
    "cpu_stats": {"cpu_usage": {"total_usage": 400_000_000, "percpu_usage": [1, 2, 3, 4]},
                  "system_cpu_usage": 20_000_000_000},
    "precpu_stats": {"cpu_usage": {"total_usage": 200_000_000}, "system_cpu_usage": 16_000_000_000},
    "memory_stats": {"usage": 150 << 20, "limit": 1 << 30, "stats": {"total_inactive_file": 50 << 20}},
    "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 500}, "eth1": {"rx_bytes": 500, "tx_bytes": 0}},
    "blkio_stats": {"io_service_bytes_recursive": [
        {"major": 8, "minor": 0, "op": "Read", "value": 4_000_000},
        {"major": 8, "minor": 0, "op": "Write", "value": 1000},
        {"major": 8, "minor": 0, "op": "Total", "value": 4_001_000},
        {"major": 8, "minor": 16, "op": "read", "value": 1}]},
    "pids_stats": {"current": 7},
}  # fmt: skip


def test_cpu_percent_scales_by_online_cpus() -> None:
    # 0.2 s of CPU over 4 s of all-CPU time, times 4 CPUs: 20 %
    assert cpu_percent(V1_SAMPLE) == pytest.approx(20.0)
    with_online = {**V1_SAMPLE, "cpu_stats": {**V1_SAMPLE["cpu_stats"], "online_cpus": 2}}
    assert cpu_percent(with_online) == pytest.approx(10.0)
    assert cpu_percent({"cpu_stats": {}, "precpu_stats": {}}) == 0.0


def test_memory_usage_leaves_out_the_page_cache() -> None:
    assert memory_usage(V1_SAMPLE["memory_stats"]) == 100 << 20
    assert memory_usage({"usage": 100, "stats": {"inactive_file": 30}}) == 70  # cgroup v2
    assert memory_usage({"usage": 100, "stats": {"inactive_file": 300}}) == 100
    assert memory_usage({"usage": 100}) == 100


def test_io_sums() -> None:
    assert network_io(V1_SAMPLE) == (2000, 500)
    assert block_io(V1_SAMPLE) == (4_000_001, 1000)


def test_stats_row_cells() -> None:
    row = stats_row(V1_SAMPLE)
    assert row.cells() == ("ffffffffffff", "web", "20.00%", "100MiB / 1GiB", "9.77%", "2kB / 500B", "4MB / 1kB", "7")


def test_stats_row_without_limit_or_name() -> None:
    row = stats_row({"memory_stats": {"usage": 10}}, container_id="abc", name="abc")
    assert row.cells() == ("abc", "abc", "0.00%", "10B / 0B", "0.00%", "0B / 0B", "0B / 0B", "0")
