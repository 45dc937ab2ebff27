"""Kernel boot to ready on conf/embedded.toml: in-process (open_engine) and as a shoald process.

Target: under 150 ms to ready. The in-process figure is the kernel's own work (config, plugin
set-up, services); the process figure adds interpreter start and imports (trio alone is a large
part of it on this machine), so `python -c "import trio"` is printed beside it.
Run: .venv/bin/python bench/boot.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

from benchlib import print_table, time_command


async def boot_once(data: Path) -> float:
    import dataclasses

    from shoal import open_engine
    from shoal.config import load_config
    from shoal.presets import resolve_config_path

    start = time.perf_counter()
    config = load_config(resolve_config_path("embedded"))
    config = dataclasses.replace(config, engine=dataclasses.replace(config.engine, data_root=str(data), run_root=str(data / "run")))
    async with open_engine(config):
        ready = time.perf_counter() - start
    return ready


def process_boot(tmp: Path) -> float:
    ready = tmp / "ready"
    ready.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "shoal.daemon", "--config", "embedded", "--data-root", str(tmp / "data"),
         "--run-root", str(tmp / "run"), "--ready-file", str(ready), "--log-level", "warning"],  # fmt: skip
    )
    while not ready.exists():
        if proc.poll() is not None:
            raise SystemExit(f"shoald exited with {proc.returncode}")
        time.sleep(0.0005)
    elapsed = time.perf_counter() - start
    proc.terminate()
    proc.wait()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        in_process = [trio.run(boot_once, tmp / f"in{i}") for i in range(args.runs + 2)][2:]
        process = [process_boot(tmp) for _ in range(args.runs)]
    bare = time_command([sys.executable, "-c", "pass"], runs=args.runs)
    trio_import = time_command([sys.executable, "-c", "import trio"], runs=args.runs)
    verdict = "met" if statistics.median(in_process) < 0.150 else "MISSED"
    print_table(
        f"Boot to ready, conf/embedded.toml ({args.runs} runs)",
        [
            ("open_engine (in-process, fresh data root)", in_process, f"target < 150 ms: {verdict}"),
            ("shoald process start to ready file", process, "includes interpreter start and imports"),
            ("python -c pass", bare, "peer: bare interpreter"),
            ('python -c "import trio"', trio_import, "peer: the async runtime alone"),
        ],
    )


if __name__ == "__main__":
    main()
