"""The copying driver's work: merge unpacked layers into one private directory.

Where overlayfs is missing, a container gets its own copy of its image: each layer, bottom
first, is copied over the result of the ones below, reading the same marks overlayfs would
(unpacked layers are always in overlayfs's format, see ``unpack``): a character device
0:0 deletes the path below, a directory with ``trusted.overlay.opaque=y`` replaces the
directory below instead of merging into it. Owners, modes, times, xattrs, hard links
(within a layer), device nodes and FIFOs are kept. Nothing is ever followed through a
symlink on the destination side: entries are replaced, not written through.
"""

from __future__ import annotations

import os
import shutil
import stat

from .unpack import OPAQUE_XATTR, is_whiteout

_SKIPPED_XATTRS = "trusted.overlay."


def apply_copy(layer: str, destination: str) -> None:
    """Copy one unpacked layer over ``destination``, applying its whiteouts.

    Args:
        layer: the layer's directory.
        destination: the merged tree so far (an existing directory).
    Returns:
        None.
    """
    _merge_dir(layer, destination, {})
    _copy_metadata(layer, destination, os.lstat(layer))


def _merge_dir(source: str, destination: str, links: dict[tuple[int, int], str]) -> None:
    with os.scandir(source) as entries:
        for entry in entries:
            src = entry.path
            dst = os.path.join(destination, entry.name)
            st = entry.stat(follow_symlinks=False)
            if is_whiteout(st):
                _remove(dst)
            elif stat.S_ISDIR(st.st_mode):
                existing = _lstat(dst)
                if existing is None or not stat.S_ISDIR(existing.st_mode) or _is_opaque(src):
                    _remove(dst)
                    os.mkdir(dst, 0o700)
                _merge_dir(src, dst, links)
                _copy_metadata(src, dst, st)
            else:
                _remove(dst)
                _copy_leaf(src, dst, st, links)


def _copy_leaf(src: str, dst: str, st: os.stat_result, links: dict[tuple[int, int], str]) -> None:
    inode = (st.st_dev, st.st_ino)
    if st.st_nlink > 1 and inode in links:
        os.link(links[inode], dst, follow_symlinks=False)
        return
    if stat.S_ISREG(st.st_mode):
        shutil.copyfile(src, dst, follow_symlinks=False)
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
    else:  # device node, FIFO or socket
        os.mknod(dst, st.st_mode, st.st_rdev)
    if st.st_nlink > 1:
        links[inode] = dst
    _copy_metadata(src, dst, st)


def _copy_metadata(src: str, dst: str, st: os.stat_result) -> None:
    os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
    symlink = stat.S_ISLNK(st.st_mode)
    if not symlink:
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError:
        names = []
    for name in names:
        if not name.startswith(_SKIPPED_XATTRS):
            try:
                os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=False)
            except OSError:
                pass  # the destination file system lacks that xattr namespace
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _remove(path: str) -> None:
    st = _lstat(path)
    if st is None:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)
