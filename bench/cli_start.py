"""How fast `shoal --version` and `shoal --help` start, beside a bare interpreter in the same run.

Target: at most +50 ms over `python -c pass` from the same virtualenv.
Run: .venv/bin/python bench/cli_start.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from benchlib import print_table, time_command

BIN = Path(sys.executable).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    commands = {
        "python -S -I -c pass": [sys.executable, "-S", "-I", "-c", "pass"],
        "python -c pass": [sys.executable, "-c", "pass"],
        "shoal --version": [str(BIN / "shoal"), "--version"],
        "shoal --help": [str(BIN / "shoal"), "--help"],
    }
    # Interleave the commands run by run so that machine noise hits them alike.
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, argv in commands.items():
            samples[name] += time_command(argv, runs=1, warmup=0)
    base = statistics.median(samples["python -c pass"])
    rows = []
    for name, s in samples.items():
        over = (statistics.median(s) - base) * 1000
        note = f"{over:+.1f} ms vs python -c pass" if name.startswith("shoal") else ""
        if name.startswith("shoal"):
            note += "  (target <= +50 ms: " + ("met" if over <= 50 else "MISSED") + ")"
        rows.append((name, s, note))
    print_table(f"CLI start ({args.runs} runs each, interleaved)", rows)


if __name__ == "__main__":
    main()
