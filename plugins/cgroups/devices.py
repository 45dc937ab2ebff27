"""The device access a container gets through the cgroup v1 devices controller.

Everything is denied first, then the devices every container needs are allowed, as Docker
does for an unprivileged container. Creating device nodes (mknod) stays allowed: opening them
is what the list guards. cgroup v2 has no devices controller; there the same policy needs an
eBPF program attached to the group, which this plugin does not install.
"""

from __future__ import annotations

#: Written to devices.deny first: every device, every access.
DENY_ALL = "a"

#: Written to devices.allow one rule per write: "type major:minor access".
DEFAULT_ALLOW = (
    "c *:* m",  # mknod of any character device
    "b *:* m",  # mknod of any block device
    "c 1:3 rwm",  # /dev/null
    "c 1:5 rwm",  # /dev/zero
    "c 1:7 rwm",  # /dev/full
    "c 1:8 rwm",  # /dev/random
    "c 1:9 rwm",  # /dev/urandom
    "c 5:0 rwm",  # /dev/tty
    "c 5:1 rwm",  # /dev/console
    "c 5:2 rwm",  # /dev/ptmx
    "c 136:* rwm",  # /dev/pts/*
    "c 10:229 rwm",  # /dev/fuse
)
