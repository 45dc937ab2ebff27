"""Container speed and memory, side by side with the peers installed here.

Usage (as root): .venv/bin/python bench/containers.py [--runs N] [--fleet N]

1. Start-to-exit of /bin/true through the embedded engine API (create + start + wait +
   remove, with its cgroup, overlay rootfs and store records) against `runc run` on an OCI
   bundle of the same rootfs (runc makes its cgroup too). crun is tried as well and noted when
   it refuses this host's hybrid cgroup layout.
2. `docker run --rm IMG true` through the real docker CLI against shoald, and `shoal run --rm`.
   No Docker engine runs on this machine, so Docker's own figure is not measured here.
3. A fleet of N detached containers started then removed through the docker CLI, and the PSS
   of shoald with its container monitor while the fleet idles.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from benchlib import print_table, runc_bundle  # noqa: E402
from shoaltest import make_busybox_rootfs, run_daemon  # noqa: E402

from shoal import open_engine  # noqa: E402
from shoal.config import load_config  # noqa: E402

IMAGE = "busybox:bench"


def peer_runs(name: str, bundle: Path) -> tuple[list[str], str] | None:
    """The command to time for a peer runtime, or None with the reason printed."""
    if shutil.which(name) is None:
        print(f"{name}: not installed, skipped")
        return None
    probe = subprocess.run([name, "run", "bench-probe"], cwd=bundle, capture_output=True, text=True)
    if probe.returncode != 0:
        print(f"{name}: cannot run here, skipped: {probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else probe.returncode}")
        return None
    return [name, "run"], ""


def time_peer(argv: list[str], bundle: Path, i: int) -> float:
    start = time.perf_counter()
    subprocess.run([*argv, f"bench-{os.getpid()}-{i}"], cwd=bundle, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


async def engine_samples(data: Path, rootfs: Path, runs: int, bundle: Path, peers: dict[str, list[str]]) -> dict[str, list[float]]:
    """Interleave engine runs with peer runs (peers in a worker thread, one at a time)."""
    config = load_config(ROOT / "conf" / "default.toml")
    config = dataclasses.replace(config, engine=dataclasses.replace(config.engine, data_root=str(data), run_root=str(data / "run")))
    config = dataclasses.replace(config, plugins=tuple(e for e in config.plugins if e.plugin.name != "engine-api"))
    samples: dict[str, list[float]] = {"shoal engine API": [], **{name: [] for name in peers}}
    async with open_engine(config) as engine:
        await engine.slot("images").import_rootfs(str(rootfs), IMAGE, {"Cmd": ["sh"]})
        containers = engine.slot("containers")
        for i in range(runs + 3):
            start = time.perf_counter()
            created = await containers.create({"Image": IMAGE, "Cmd": ["/bin/true"], "HostConfig": {"NetworkMode": "none"}})
            waiter = containers.wait(created["Id"], "next-exit")
            await containers.start(created["Id"])
            await waiter
            await containers.remove(created["Id"])
            elapsed = time.perf_counter() - start
            if i >= 3:
                samples["shoal engine API"].append(elapsed)
            for name, argv in peers.items():
                took = await trio.to_thread.run_sync(time_peer, argv, bundle, i)
                if i >= 3:
                    samples[name].append(took)
    return samples


def pss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def daemon_side_pss(daemon_pid: int, run_root: Path) -> tuple[int, int]:
    """(KiB, process count) of shoald, the container monitor it started (detached on purpose,
    so that it outlives a daemon restart) and every host-pid-namespace process of theirs."""
    host_ns = os.readlink("/proc/self/ns/pid")
    parents: dict[int, int] = {}
    roots = {daemon_pid}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "shoal.plugins.namespaces.monitor" in cmdline and str(run_root) in cmdline:
                roots.add(int(entry.name))
    family = set(roots)
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in family and pid not in family:
                family.add(pid)
                changed = True
    ours = []
    for pid in family:
        try:
            if os.readlink(f"/proc/{pid}/ns/pid") == host_ns:
                ours.append(pid)
        except OSError:
            continue
    return sum(pss_kib(pid) for pid in ours), len(ours)


def cli_benchmarks(tmp: Path, rootfs: Path, runs: int, fleet: int) -> None:
    tar = tmp / "rootfs.tar"
    with tarfile.open(tar, "w") as archive:
        for entry in sorted(rootfs.iterdir()):
            archive.add(entry, arcname=entry.name)
    config = tmp / "bench.toml"
    config.write_text(f'extend = "{ROOT / "conf" / "default.toml"}"\n[plugins.cgroups]\nparent = "shoal-bench"\n')
    (tmp / "daemon").mkdir()
    with run_daemon(config, tmp / "daemon", "--log-level", "warning") as daemon:
        daemon.wait_ready()
        sock = tmp / "daemon" / "run" / "shoal.sock"
        env = {**os.environ, "DOCKER_HOST": f"unix://{sock}", "SHOAL_HOST": f"unix://{sock}", "DOCKER_CONFIG": str(tmp)}
        docker = shutil.which("docker")
        shoal = str(Path(sys.executable).parent / "shoal")
        subprocess.run([shoal, "import", str(tar), IMAGE], env=env, check=True, stdout=subprocess.DEVNULL)
        rows = []
        commands = {"shoal run --rm IMG true": [shoal, "run", "--rm", IMAGE, "true"]}
        if docker:
            commands["docker run --rm IMG true (vs shoald)"] = [docker, "run", "--rm", IMAGE, "true"]
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for i in range(runs + 2):
            for name, argv in commands.items():
                start = time.perf_counter()
                subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                if i >= 2:
                    samples[name].append(time.perf_counter() - start)
        for name, s in samples.items():
            rows.append((name, s, "Docker here: 270-297 ms (reference, not run)" if name.startswith("docker") else ""))
        print_table(f"End to end through the CLI against shoald ({runs} runs)", rows)

        client = docker or shoal
        idle = "trap 'exit 0' TERM; sleep 3600 & wait"
        start = time.perf_counter()
        ids = []
        for _ in range(fleet):
            out = subprocess.run([client, "run", "-d", IMAGE, "sh", "-c", idle], env=env, check=True, capture_output=True, text=True)
            ids.append(out.stdout.strip())
        started = time.perf_counter() - start
        time.sleep(1.0)
        kib, count = daemon_side_pss(daemon.proc.pid, tmp / "daemon" / "run")
        start = time.perf_counter()
        subprocess.run([client, "rm", "-f", *ids], env=env, check=True, stdout=subprocess.DEVNULL)
        removed = time.perf_counter() - start
        name = Path(client).name
        print(f"\nFleet of {fleet} detached containers through `{name}` (sequential, as a user would type them)")
        print(f"  start all: {started:6.2f} s    remove all (one `rm -f`): {removed:6.2f} s")
        print(f"  daemon-side PSS with {fleet} idle containers: {kib / 1024:6.1f} MiB in {count} processes "
              f"({kib / 1024 / fleet:.2f} MiB per container)")  # fmt: skip
        print("  Docker here (reference, not run): 10.6 s to start 50, 5.1 s to remove, 275 MiB PSS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--fleet", type=int, default=50)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: containers need it")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        rootfs = tmp / "rootfs"
        make_busybox_rootfs(rootfs)
        bundle = runc_bundle(tmp, rootfs)
        peers = {name: argv for name in ("runc", "crun") if (found := peer_runs(name, bundle)) for argv in [found[0]]}
        samples = trio.run(engine_samples, tmp / "engine", rootfs, args.runs, bundle, peers)
        base = statistics.median(samples["shoal engine API"])
        rows = []
        for name, s in samples.items():
            ratio = statistics.median(s) / base
            rows.append((name, s, "" if name.startswith("shoal") else f"{ratio:.2f}x shoal's time"))
        print_table(f"Start-to-exit of /bin/true, interleaved ({args.runs} runs)", rows)
        cli_benchmarks(tmp, rootfs, args.runs, args.fleet)


if __name__ == "__main__":
    main()
