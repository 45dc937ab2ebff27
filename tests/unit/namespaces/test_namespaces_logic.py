"""Pure logic of the namespaces provider: user resolution, mount options, capability masks."""

from __future__ import annotations

import pytest

from shoal.plugins.namespaces import DEFAULT_CAPABILITIES
from shoal.plugins.namespaces.caps import to_mask
from shoal.plugins.namespaces.rootfs import parse_options
from shoal.plugins.namespaces import syscalls as sc
from shoal.plugins.namespaces.users import UserError, resolve_user

PASSWD = "root:x:0:0:root:/root:/bin/sh\n# comment\nuser:x:1000:1000::/home/user:/bin/sh\n"
GROUP = "root:x:0:\nuser:x:1000:\nextra:x:2000:other,user\nstaff:x:50:\n"


@pytest.mark.parametrize(
    ("spec", "uid", "gid", "groups", "home"),
    [
        ("", 0, 0, (0,), "/root"),
        ("user", 1000, 1000, (1000, 2000), "/home/user"),
        ("1000", 1000, 1000, (1000, 2000), "/home/user"),
        ("4242", 4242, 0, (0,), "/"),
        ("4242:77", 4242, 77, (77,), "/"),
        ("user:staff", 1000, 50, (50,), "/home/user"),
    ],
)
def test_resolve_user(spec, uid, gid, groups, home):
    resolved = resolve_user(spec, PASSWD, GROUP)
    assert (resolved.uid, resolved.gid, resolved.groups, resolved.home) == (uid, gid, groups, home)


def test_resolve_user_errors_and_extra_groups():
    with pytest.raises(UserError, match="unable to find user nobody: no matching entries in passwd file"):
        resolve_user("nobody", PASSWD, GROUP)
    with pytest.raises(UserError, match="unable to find group wheel"):
        resolve_user("user:wheel", PASSWD, GROUP)
    assert resolve_user("user", PASSWD, GROUP, (9, 2000)).groups == (1000, 2000, 9)
    assert resolve_user("7", "", "").groups == (0,)


def test_parse_options():
    flags, propagation, data = parse_options(("rbind", "ro", "nosuid", "rprivate", "size=64m", "mode=1777"))
    assert flags == sc.MS_BIND | sc.MS_REC | sc.MS_RDONLY | sc.MS_NOSUID
    assert propagation == ["rprivate"]
    assert data == "size=64m,mode=1777"
    assert parse_options(("ro", "rw"))[0] == 0


def test_capability_masks():
    assert to_mask(DEFAULT_CAPABILITIES) == 0xA80425FB
    assert to_mask(["sys_admin", "CAP_KILL"]) == (1 << 21) | (1 << 5)
    with pytest.raises(ValueError, match="unknown capability: 'CAP_NOPE'"):
        to_mask(["CAP_NOPE"])
