"""Which cgroups a container process moves itself into, and which it leaves to the starter."""

from __future__ import annotations

from pathlib import Path

from shoal.plugins.namespaces.cgroupjoin import move_self


def test_v1_groups_are_joined_through_tasks_and_v2_ones_are_left(tmp_path: Path) -> None:
    v1 = tmp_path / "memory" / "c1"
    v2 = tmp_path / "unified" / "c1"
    for group in (v1, v2):
        group.mkdir(parents=True)
        (group / "cgroup.procs").write_text("")
    (v1 / "tasks").write_text("")
    left = move_self([str(v1 / "cgroup.procs"), str(v2 / "cgroup.procs")])
    assert left == [str(v2 / "cgroup.procs")]
    assert (v1 / "tasks").read_text() == "0"  # "0": the writer itself
    assert (v2 / "cgroup.procs").read_text() == ""
