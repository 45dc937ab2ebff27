"""Container start-to-exit of /bin/true: the namespaces provider vs runc and crun.

Usage (as root): .venv/bin/python bench/container_start.py [-n RUNS] [--memory N]

With ``--memory N`` it first prints the PSS of every process involved while N containers
idle, with and without ``--init``: the monitor (the provider's only daemon-side process),
this process (standing in for the daemon), any per-container helper (the --init PID 1s)
and, for scale, the programs themselves.

All runtimes use the same busybox rootfs (Debian's busybox-static) and run in one process,
interleaved, so machine noise hits them alike. shoal is timed through its isolation provider
directly (create + start + wait, new pid/mount/uts/ipc/net namespaces, masked and read-only
paths, Docker's capabilities); runc and crun are timed as ``RUNTIME run`` on an OCI bundle
made by ``runc spec``. crun is run with ``--cgroup-manager=disabled`` when it refuses this
host's hybrid cgroup layout (noted in the table); shoal creates no cgroup either, since
cgroups belong to the resources slot.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from shoaltest import make_busybox_rootfs  # noqa: E402

from benchlib import runc_bundle  # noqa: E402

from shoal.plugins.namespaces import DEFAULT_CAPABILITIES  # noqa: E402
from shoal.plugins.namespaces.isolation import NamespaceIsolation  # noqa: E402
from shoal.runtime import DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS, ProcessSpec, RuntimeSpec  # noqa: E402
from shoal.slots import Stdio  # noqa: E402

MASKED = DEFAULT_MASKED_PATHS
READONLY = DEFAULT_READONLY_PATHS


def runtime_command(name: str, bundle: Path) -> tuple[list[str], str] | None:
    """The command line for a peer runtime, or None when it is missing or cannot run here."""
    if shutil.which(name) is None:
        return None
    for extra, note in (([], ""), (["--cgroup-manager=disabled"], "no cgroup")):
        if extra and name != "crun":
            continue
        cmd = [name, *extra, "run", "--bundle", str(bundle)]
        probe = subprocess.run([*cmd, f"bench-probe-{os.getpid()}"], capture_output=True, text=True)
        if probe.returncode == 0:
            return cmd, note
        print(f"{name} {' '.join(extra)}: {(probe.stderr or probe.stdout).strip()}")
    return None


def pss_kib(pid: int) -> int:
    """Proportional set size of one process, KiB (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
    except (FileNotFoundError, ProcessLookupError):
        return 0


def children(pid: int) -> list[int]:
    """PIDs of the direct children of ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    data = f.read()
            except OSError:
                continue
            if int(data[data.rindex(b")") + 2 :].split()[1]) == pid:
                found.append(int(entry))
    return found


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


async def measure_memory(root: Path, rootfs: Path, count: int) -> None:
    """PSS of every process involved while ``count`` containers idle, with and without --init.

    Daemon side: this process (standing in for shoald: it holds the provider's handles)
    and the monitor. Per container: every process of the container that is not its
    program (with --init, the PID 1 that runs the program as its child), then the program.
    """
    for init in (False, True):
        procs = []
        async with NamespaceIsolation(root / f"state-mem-{init}") as iso:
            monitor = iso.monitor_pid
            assert monitor is not None
            monitor_idle = pss_kib(monitor)
            try:
                for i in range(count):
                    spec = RuntimeSpec(id=f"mem-{i}", rootfs=str(rootfs), init=init,
                                       process=ProcessSpec(args=("sleep", "3600"), env=("PATH=/bin",),
                                                           capabilities=DEFAULT_CAPABILITIES))
                    proc = await iso.create(spec, Stdio())
                    await proc.start()
                    procs.append(proc)
                await trio.sleep(0.3)
                bench = pss_kib(os.getpid())
                monitor_busy = pss_kib(monitor)
                tree = children(monitor)
                if sorted(tree) != sorted(p.pid for p in procs):
                    print(f"  note: the monitor has {len(tree)} children for {count} containers")
                helpers = sum(pss_kib(p.pid) for p in procs) if init else 0
                programs = sum(pss_kib(c) for p in procs for c in children(p.pid)) if init else \
                    sum(pss_kib(p.pid) for p in procs)
                label = "with --init" if init else "plain"
                print(f"{count} idle containers ({label}):")
                print(f"  monitor            {mib(monitor_busy):>10}  (idle, no container: {mib(monitor_idle)})")
                print(f"  bench process      {mib(bench):>10}  (the daemon stand-in; shoald's own PSS is bench/containers.py's)")
                if init:
                    print(f"  init PID 1s        {mib(helpers):>10}  ({helpers / count:.0f} KiB each)")
                print(f"  per-container overhead, daemon side {round((monitor_busy - monitor_idle + helpers) / count)} KiB "
                      f"(monitor growth + init); total monitor{' + inits' if init else ''} "
                      f"{mib(monitor_busy + helpers)}")
                print(f"  the programs (sleep) {mib(programs)}, not overhead")
            finally:
                for proc in procs:
                    proc.kill(9)
                    await proc.wait()
                    iso.forget(proc.state())
                    proc.close()


def time_peer(cmd: list[str], run_id: str) -> float:
    start = time.perf_counter()
    subprocess.run([*cmd, run_id], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


async def time_shoal(iso: NamespaceIsolation, rootfs: Path, run_id: str) -> float:
    spec = RuntimeSpec(id=run_id, rootfs=str(rootfs), hostname="bench", masked_paths=MASKED,
                       readonly_paths=READONLY,
                       process=ProcessSpec(args=("/bin/true",), env=("PATH=/bin",),
                                           capabilities=DEFAULT_CAPABILITIES, no_new_privileges=True))
    start = time.perf_counter()
    proc = await iso.create(spec, Stdio())
    await proc.start()
    code = await proc.wait()
    elapsed = time.perf_counter() - start
    state = proc.state()
    proc.close()
    iso.forget(state)
    if code != 0:
        raise SystemExit(f"/bin/true exited {code}")
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=50)
    parser.add_argument("--memory", type=int, default=50, metavar="N",
                        help="also measure the PSS of N idle containers (0: skip)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rootfs = root / "rootfs"
        make_busybox_rootfs(rootfs)
        bundle = runc_bundle(root, rootfs) if shutil.which("runc") else None
        peers = {}
        for name in ("runc", "crun"):
            found = runtime_command(name, bundle) if bundle else None
            if found is None:
                print(f"{name}: not installed or cannot run here; skipped")
            else:
                peers[name] = found
        if args.memory:
            await measure_memory(root, rootfs, args.memory)
        times: dict[str, list[float]] = {"shoal": [], **{name: [] for name in peers}}
        async with NamespaceIsolation(root / "state") as iso:
            await time_shoal(iso, rootfs, "warm-up")
            for i in range(args.runs):
                times["shoal"].append(await time_shoal(iso, rootfs, f"bench-{i}"))
                for name, (cmd, _note) in peers.items():
                    times[name].append(time_peer(cmd, f"bench-{os.getpid()}-{i}"))
    base = statistics.median(times["shoal"])
    print(f"\n/bin/true start-to-exit, median of {args.runs} interleaved runs")
    print(f"{'runtime':<8} {'median ms':>10} {'min ms':>8} {'vs shoal':>9}  note")
    for name, values in times.items():
        median = statistics.median(values)
        note = peers[name][1] if name in peers else "isolation slot, direct"
        print(f"{name:<8} {median * 1000:>10.2f} {min(values) * 1000:>8.2f} {median / base:>8.2f}x  {note}")


if __name__ == "__main__":
    trio.run(main)
