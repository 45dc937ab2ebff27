"""Docker's unit syntaxes: sizes, CPUs, durations, timestamps, and the humanised output."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shoal.cli.units import (
    bytes_size,
    describe_state,
    human_duration,
    human_size,
    parse_api_time,
    parse_cpus,
    parse_duration,
    parse_memory_swap,
    parse_size,
    parse_timestamp,
)


@pytest.mark.parametrize(
    ("text", "size"),
    [("512m", 512 << 20), ("1g", 1 << 30), ("1G", 1 << 30), ("1.5g", 3 << 29), ("64k", 64 << 10), ("64KiB", 64 << 10),
     ("100", 100), ("100b", 100), ("2 mb", 2 << 20), ("1t", 1 << 40)],
)  # fmt: skip
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["10XB", "", "m", "-1", "1.2.3m", "12 kbytes", "1e3"])
def test_parse_size_rejects_with_dockers_wording(text: str) -> None:
    with pytest.raises(ValueError, match=rf"^invalid size: '{text}'$"):
        parse_size(text)


def test_memory_swap_accepts_minus_one() -> None:
    assert parse_memory_swap("-1") == -1
    assert parse_memory_swap("1g") == 1 << 30


@pytest.mark.parametrize(
    ("text", "nano"),
    [("1.5", 1_500_000_000), ("2", 2_000_000_000), ("0.01", 10_000_000), (".5", 500_000_000),
     ("0.000000001", 1), ("1.10", 1_100_000_000), ("3.", 3_000_000_000)],
)  # fmt: skip
def test_parse_cpus_is_exact(text: str, nano: int) -> None:
    assert parse_cpus(text) == nano


def test_parse_cpus_errors() -> None:
    with pytest.raises(ValueError, match="failed to parse abc as a rational number"):
        parse_cpus("abc")
    with pytest.raises(ValueError, match="failed to parse . as a rational number"):
        parse_cpus(".")
    with pytest.raises(ValueError, match="value is too precise"):
        parse_cpus("0.0000000001")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10m", 600), ("1h30m", 5400), ("1.5s", 1.5), ("300ms", 0.3), ("2h45m10s", 9910), ("0", 0), ("-2m", -120)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "10x", "m", "1h 2m"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_parse_timestamp_forms() -> None:
    now = 1_700_000_000.25
    assert parse_timestamp("10m", now) == "1699999400.250000000"
    assert parse_timestamp("1700000000", now) == "1700000000"
    assert parse_timestamp("1700000000.5", now) == "1700000000.5"
    assert parse_timestamp("2023-11-14T22:13:20Z", now) == "1700000000.000000000"
    assert parse_timestamp("2023-11-14T23:13:20+01:00", now) == "1700000000.000000000"
    local = datetime(2023, 11, 14, 22, 13, 20).timestamp()
    assert parse_timestamp("2023-11-14T22:13:20", now) == f"{int(local)}.000000000"
    with pytest.raises(ValueError, match="invalid value for timestamp"):
        parse_timestamp("yesterday", now)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.5, "Less than a second"), (1, "1 second"), (3, "3 seconds"), (59, "59 seconds"), (60, "About a minute"),
     (119, "About a minute"), (120, "2 minutes"), (3599, "59 minutes"), (3600, "About an hour"),
     (5399, "About an hour"), (5400, "2 hours"), (47 * 3600, "47 hours"), (48 * 3600, "2 days"),
     (14 * 86400, "2 weeks"), (60 * 86400, "2 months"), (730 * 86400, "2 years")],
)  # fmt: skip
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0B"), (999, "999B"), (1000, "1kB"), (7_400_000, "7.4MB"), (124_000, "124kB"), (1_234_567, "1.23MB"),
     (5.6e9, "5.6GB")],
)  # fmt: skip
def test_human_size(size: float, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("size", "text"), [(0, "0B"), (1023, "1023B"), (1024, "1KiB"), (1536 << 20, "1.5GiB"), (812 << 10, "812KiB"),
                       (1_294_336, "1.234MiB")]
)  # fmt: skip
def test_bytes_size(size: float, text: str) -> None:
    assert bytes_size(size) == text


def test_parse_api_time_handles_nanoseconds_and_zero_time() -> None:
    assert parse_api_time("2023-11-14T22:13:20.123456789Z") == pytest.approx(1_700_000_000.123456)
    assert parse_api_time("0001-01-01T00:00:00Z") is None
    assert parse_api_time("") is None


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def test_describe_state() -> None:
    now = 1_700_000_000.0
    zero = "0001-01-01T00:00:00Z"
    running = {"Running": True, "StartedAt": _iso(now - 3), "FinishedAt": zero}
    assert describe_state(running, now) == "Up 3 seconds"
    assert describe_state({**running, "Paused": True}, now) == "Up 3 seconds (Paused)"
    exited = {"Running": False, "StartedAt": _iso(now - 300), "FinishedAt": _iso(now - 120), "ExitCode": 0}
    assert describe_state(exited, now) == "Exited (0) 2 minutes ago"
    assert describe_state({"Running": False, "StartedAt": zero, "FinishedAt": zero}, now) == "Created"
    assert describe_state({"Status": "dead", "Dead": True, "StartedAt": _iso(now)}, now) == "Dead"
    assert describe_state({"Status": "removing", "StartedAt": _iso(now)}, now) == "Removal In Progress"
