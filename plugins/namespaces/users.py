"""Resolve a Docker-style user ("uid", "uid:gid", "name", "name:group") against an image's
/etc/passwd and /etc/group, the way Docker does: a numeric id need not exist in the files,
a name must; supplementary groups are those of /etc/group that list the user's name."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResolvedUser:
    """The ids and home directory a container process runs with."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


class UserError(ValueError):
    """The user or group named in the spec does not exist in the container."""


def _entries(text: str, fields: int) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) >= fields:
            rows.append(parts)
    return rows


def resolve_user(user: str, passwd: str, group: str, extra_gids: tuple[int, ...] = ()) -> ResolvedUser:
    """Resolve ``user`` against the texts of /etc/passwd and /etc/group (either may be "")."""
    name_part, _, group_part = (user or "0").partition(":")
    users = _entries(passwd, 7)
    groups = _entries(group, 4)

    entry = None
    if name_part.isdigit():
        uid = int(name_part)
        entry = next((u for u in users if u[2] == name_part), None)
    else:
        entry = next((u for u in users if u[0] == name_part), None)
        if entry is None:
            raise UserError(f"unable to find user {name_part}: no matching entries in passwd file")
        uid = int(entry[2])
    gid = int(entry[3]) if entry is not None and entry[3].isdigit() else 0
    home = entry[5] if entry is not None and entry[5] else "/"

    if group_part:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            match = next((g for g in groups if g[0] == group_part), None)
            if match is None:
                raise UserError(f"unable to find group {group_part}: no matching entries in group file")
            gid = int(match[2])

    # Like initgroups(3): the primary group first, then the groups that list the user.
    supplementary: list[int] = [gid]
    if entry is not None and not group_part:
        for g in groups:
            members = [m for m in g[3].split(",") if m]
            if entry[0] in members and g[2].isdigit() and int(g[2]) not in supplementary:
                supplementary.append(int(g[2]))
    for extra in extra_gids:
        if extra not in supplementary:
            supplementary.append(extra)
    return ResolvedUser(uid=uid, gid=gid, groups=tuple(supplementary), home=home)
