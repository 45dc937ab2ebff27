"""Registry throughput, side by side in one run (needs root, skopeo, docker-registry, busybox-static).

1. skopeo pushing a ~100 MB image (from an OCI directory) into the shoal registry and
   pulling it back (into a fresh OCI directory), against the same with Debian's
   docker-registry: MB/s and shoal/docker-registry ratios (target >= 1.0).
2. The image store pulling the image from docker-registry, unpacked and ready to run,
   against ``skopeo copy`` of it into an OCI directory (target: no slower); the two take
   turns going first.

Every run uses fresh registries and a fresh skopeo home, so no blob is skipped or mounted.
Run: ``.venv/bin/python bench/registry.py [--size-mb 100] [--runs 3]``.
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

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent / "tests" / "integration" / "registry")]

import trio  # noqa: E402

from regtest import docker_registry, ensure_packages, make_oci_layout, shoal_registry  # noqa: E402


def skopeo_copy(source: str, target: str, home: Path) -> float:
    """Seconds of one ``skopeo copy`` with its own (empty) blob-info cache."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home / "data")}
    start = time.perf_counter()
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "--dest-tls-verify=false", source, target],
                   env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    return time.perf_counter() - start


def store_pull(host: str, repository: str, root: Path) -> float:
    """Seconds for a fresh image store to pull and unpack an image."""
    from shoal.plugins.images.distribution import TransportOptions
    from shoal.plugins.images.store import LocalImageStore
    from shoal.plugins.overlay.snapshotter import OverlaySnapshotter

    async def run() -> float:
        snapshotter = await trio.to_thread.run_sync(OverlaySnapshotter.open, root / "overlay", "auto")
        store = await LocalImageStore.open(root / "images", snapshotter, transport=TransportOptions())
        start = time.perf_counter()
        await store.pull(f"{host}/{repository}")
        return time.perf_counter() - start

    return trio.run(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (image layers are unpacked)")
    ensure_packages("skopeo", "docker-registry", "busybox-static")
    tmp = Path(tempfile.mkdtemp(prefix="shoal-bench-registry-"))
    try:
        layout = tmp / "layout"
        make_oci_layout(layout, padding=args.size_mb * 1_000_000)
        size_mb = sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir()) / 1e6
        results: dict[str, list[float]] = {k: [] for k in ("shoal push", "dr push", "shoal pull", "dr pull", "store pull", "skopeo pull")}
        for run in range(args.runs):
            # Fresh registries each run: skopeo (as root) keeps a host-wide blob cache that
            # would turn a second push into a cross-repository mount of the first one's blobs.
            (tmp / f"shoal{run}").mkdir()
            (tmp / f"dr{run}").mkdir()
            with shoal_registry(tmp / f"shoal{run}") as (_, shoal_port), docker_registry(tmp / f"dr{run}") as dr_port:
                for label, port in (("shoal", shoal_port), ("dr", dr_port)):
                    ref = f"docker://127.0.0.1:{port}/bench{run}/image:latest"
                    results[f"{label} push"].append(skopeo_copy(f"oci:{layout}", ref, tmp / f"home-{label}-push-{run}"))
                    results[f"{label} pull"].append(skopeo_copy(ref, f"oci:{tmp / f'out-{label}-{run}'}", tmp / f"home-{label}-pull-{run}"))
                    shutil.rmtree(tmp / f"out-{label}-{run}")
                # Alternate which of the two goes first, so that neither always meets what
                # the other leaves behind (its dirty pages being written back).
                pulls = [
                    ("store pull", lambda: store_pull(f"127.0.0.1:{dr_port}", f"bench{run}/image", tmp / f"store-{run}")),
                    ("skopeo pull", lambda: skopeo_copy(f"docker://127.0.0.1:{dr_port}/bench{run}/image:latest",
                                                        f"oci:{tmp / f'skopeo-{run}'}", tmp / f"home-skopeo-{run}")),
                ]  # fmt: skip
                for key, pull in pulls if run % 2 == 0 else reversed(pulls):
                    results[key].append(pull())
                shutil.rmtree(tmp / f"store-{run}")
                shutil.rmtree(tmp / f"skopeo-{run}")
        rate = {k: size_mb / statistics.median(v) for k, v in results.items()}
        print(f"\nimage: {size_mb:.1f} MB in 2 layers; median of {args.runs} runs")
        print(f"{'':40} {'median s':>9} {'MB/s':>8}  samples (s)")
        for key, samples in results.items():
            print(f"{key:40} {statistics.median(samples):9.3f} {rate[key]:8.1f}  {' '.join(f'{x:.3f}' for x in samples)}")
        print(f"\nskopeo push: shoal registry / docker-registry throughput ratio {rate['shoal push'] / rate['dr push']:.2f} (target >= 1.0)")
        print(f"skopeo pull: shoal registry / docker-registry throughput ratio {rate['shoal pull'] / rate['dr pull']:.2f} (target >= 1.0)")
        print(f"pull from docker-registry: image store (unpacked) / skopeo to OCI dir speed ratio "
              f"{rate['store pull'] / rate['skopeo pull']:.2f} (target >= 1.0)")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
