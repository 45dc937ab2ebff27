"""Shared bits of the benchmarks: timing commands, medians, and the printed table."""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def time_command(argv: Sequence[str], runs: int, warmup: int = 2, **kwargs: object) -> list[float]:
    """Wall-clock seconds of each run of a command (output discarded)."""
    samples = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, **kwargs)  # type: ignore[call-overload]
        if i >= warmup:
            samples.append(time.perf_counter() - start)
    return samples


def time_calls(fn: Callable[[], object], runs: int, warmup: int = 2) -> list[float]:
    samples = []
    for i in range(warmup + runs):
        start = time.perf_counter()
        fn()
        if i >= warmup:
            samples.append(time.perf_counter() - start)
    return samples


def ms(samples: Sequence[float]) -> str:
    return f"{statistics.median(samples) * 1000:8.1f}"


def print_table(title: str, rows: Sequence[tuple[str, Sequence[float], str]]) -> None:
    """Rows of (label, samples, note): median, p90 and min in milliseconds."""
    print(f"\n{title}")
    print(f"{'':44} {'median ms':>9} {'p90 ms':>8} {'min ms':>8}  note")
    for label, samples, note in rows:
        ordered = sorted(samples)
        p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
        print(f"{label:44} {ms(samples):>9} {p90 * 1000:8.1f} {ordered[0] * 1000:8.1f}  {note}")


def runc_bundle(root: Path, rootfs: Path) -> Path:
    """An OCI bundle (made by ``runc spec``) that runs /bin/true in ``rootfs``."""
    bundle = root / "bundle"
    bundle.mkdir()
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["root"] = {"path": str(rootfs), "readonly": False}
    config["process"]["args"] = ["/bin/true"]
    config["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle
