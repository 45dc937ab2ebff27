"""Detection of the host's cgroup layout from mountinfo, and the driver it leads to."""

from __future__ import annotations

import pytest

from shoal.errors import Skip
from shoal.plugins.cgroups.layout import parse_mountinfo
from shoal.plugins.cgroups.resources import choose_driver
from shoal.plugins.cgroups.v1 import V1Driver
from shoal.plugins.cgroups.v2 import V2Driver

HYBRID = """\
23 1 254:0 / / rw,relatime - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

PURE_V2 = """\
23 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""

COMOUNTED_V1 = """\
25 24 0:22 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct
26 24 0:23 / /sys/fs/cgroup/memory rw,nosuid shared:10 - cgroup cgroup rw,memory
27 24 0:23 / /mnt/memory\\040copy rw,nosuid shared:10 - cgroup cgroup rw,memory
"""


def test_hybrid_layout_uses_the_v1_controllers() -> None:
    layout = parse_mountinfo(HYBRID)
    assert layout.kind == "hybrid"
    assert layout.v2 == "/sys/fs/cgroup/unified"
    assert layout.v1["memory"] == "/sys/fs/cgroup/memory"
    assert set(layout.v1) == {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids"}
    assert isinstance(choose_driver(layout, "auto", "shoal"), V1Driver)


def test_pure_v2_layout() -> None:
    layout = parse_mountinfo(PURE_V2)
    assert layout.kind == "v2"
    assert layout.v2 == "/sys/fs/cgroup" and not layout.v1
    driver = choose_driver(layout, "auto", "shoal")
    assert isinstance(driver, V2Driver) and driver.root == "/sys/fs/cgroup"


def test_comounted_v1_shares_a_directory_and_first_mount_wins() -> None:
    layout = parse_mountinfo(COMOUNTED_V1)
    assert layout.kind == "v1"
    assert layout.v1 == {
        "cpu": "/sys/fs/cgroup/cpu,cpuacct",
        "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
        "memory": "/sys/fs/cgroup/memory",
    }
    driver = choose_driver(layout, "v1", "shoal")
    assert driver.group_dirs("c") == ["/sys/fs/cgroup/cpu,cpuacct/shoal/c", "/sys/fs/cgroup/memory/shoal/c"]


def test_escaped_mount_points_are_decoded() -> None:
    layout = parse_mountinfo("30 23 0:26 / /run/my\\040cgroup rw - cgroup2 none rw\n")
    assert layout.v2 == "/run/my cgroup"


def test_forcing_a_driver_the_host_lacks_skips() -> None:
    with pytest.raises(Skip, match="cgroup2"):
        choose_driver(parse_mountinfo(COMOUNTED_V1), "v2", "shoal")
    with pytest.raises(Skip, match="v1"):
        choose_driver(parse_mountinfo(PURE_V2), "v1", "shoal")
    assert parse_mountinfo("").kind == "none"
    with pytest.raises(Skip):
        choose_driver(parse_mountinfo(""), "auto", "shoal")


def test_forcing_v2_on_a_hybrid_host_picks_the_unified_mount() -> None:
    driver = choose_driver(parse_mountinfo(HYBRID), "v2", "shoal")
    assert isinstance(driver, V2Driver) and driver.root == "/sys/fs/cgroup/unified"
