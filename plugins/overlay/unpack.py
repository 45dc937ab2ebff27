"""Unpack one layer tar into a directory, safely, in overlayfs's on-disk format.

Safety: every write is made relative to a directory descriptor, and the directory a
member goes into is found by walking its path one component at a time, resolving
symlinks *inside* the layer directory as if it were ``/`` (an absolute link restarts at the
layer root, ``..`` stops there). A member named ``../x`` or a hard link whose target climbs
out is refused; an absolute name (``/etc/passwd``) is taken relative to the layer root; a
symlink's *content* is stored as it is, because it only ever gets resolved inside the
container's root. So no member, however crafted, can write outside the layer directory.

Whiteouts: the OCI layer format marks a deleted file with an empty ``.wh.NAME`` and a
directory whose lower contents are hidden with ``.wh..wh..opq``. overlayfs wants a
character device 0:0 named ``NAME`` and the ``trusted.overlay.opaque=y`` xattr on the
directory; that is what is written, so an unpacked layer can be used as a lowerdir as it is
(and the copying driver reads the same marks). Other ``.wh..wh.`` names (aufs internals)
are skipped, and ``trusted.overlay.*`` xattrs carried by the tar are dropped: only this code
decides what overlayfs sees.

Ownership (numeric ids), modes (setuid bits included), modification times, xattrs
(``SCHILY.xattr.*`` PAX records), hard links, device nodes and FIFOs are kept; this needs
root, which the snapshotter requires. Directory times are set last, once nothing more
is written into them.

The uncompressed bytes are hashed as they are read, so the caller can check the layer's
diff id; ``unpack_layer`` blocks and runs in a worker thread.

``unpack_growing`` runs the same unpack in a child Python process over a file that is
still being downloaded: the parent tells it, over the child's stdin, how many bytes the
file holds so far and, once the download is verified, where it ends.
A process rather than a thread because the parent is busy receiving and hashing the
download, and the unpack's per-member Python work would contend with it for the GIL.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import sys
import tarfile
from collections import deque
from collections.abc import AsyncIterable
from typing import BinaryIO

from shoal.errors import InvalidArgument

from .compression import decompressed, is_data_error

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARK = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_OVERLAY_XATTRS = "trusted.overlay."
_PAX_XATTR = "SCHILY.xattr."
_MAX_SYMLINKS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20
_TAR_READ = 64 << 10


class UnsafeLayer(InvalidArgument):
    """A layer tar that is malformed or tries to write outside its directory."""


class HashingReader:
    """A read-only stream that hashes (sha256) and counts every byte read through it."""

    def __init__(self, inner: BinaryIO) -> None:
        self._inner = inner
        self._hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        """Read like the wrapped stream, hashing what comes back."""
        data = self._inner.read(n)
        self._hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        """Read to the end (tar padding included) so the digest covers every byte."""
        while self.read(_CHUNK):
            pass

    @property
    def digest(self) -> str:
        """The "sha256:<hex>" digest of the bytes read so far."""
        return "sha256:" + self._hash.hexdigest()


def clean_member_path(name: str) -> str:
    """Turn a tar member name into a path relative to the layer root ("" for the root).

    Leading slashes are dropped (absolute names are contained); a name whose ``..``
    components climb above the root is refused with ``UnsafeLayer``.
    """
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise UnsafeLayer(f"tar member {name!r} points outside the layer")
            parts.pop()
        else:
            parts.append(part)
    return "/".join(parts)


def open_dir_in_root(root_fd: int, path: str, create: bool) -> int:
    """Open the directory at ``path`` with symlinks resolved inside the tree of ``root_fd``.

    Args:
        root_fd: descriptor of the directory that acts as ``/``.
        path: a relative path ("" is the root itself).
        create: make missing directories (mode 0755, owned by root) on the way.
    Returns:
        A new descriptor (the caller closes it); raises ``UnsafeLayer`` when a component
        is not a directory or symlinks loop.
    """
    stack = [os.dup(root_fd)]
    pending = deque(p for p in path.split("/") if p)
    links = 0
    try:
        while pending:
            part = pending.popleft()
            if part == ".":
                continue
            if part == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            current = stack[-1]
            try:
                st = os.stat(part, dir_fd=current, follow_symlinks=False)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=current)
                st = os.stat(part, dir_fd=current, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                if links > _MAX_SYMLINKS:
                    raise UnsafeLayer(f"too many levels of symbolic links in {path!r}")
                target = os.readlink(part, dir_fd=current)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                pending.extendleft(reversed([p for p in target.split("/") if p]))
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafeLayer(f"{path!r}: {part!r} is not a directory")
            stack.append(os.open(part, _DIR_FLAGS, dir_fd=current))
        return stack.pop()
    finally:
        for fd in stack:
            os.close(fd)


def _remove_entry(dir_fd: int, name: str) -> os.stat_result | None:
    """Delete whatever ``name`` is (a directory with its contents); return what it was."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)
    return st


def is_whiteout(st: os.stat_result) -> bool:
    """Tell whether a file is an overlayfs whiteout (a character device 0:0)."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _xattrs(member: tarfile.TarInfo) -> list[tuple[str, bytes]]:
    return [
        (key.removeprefix(_PAX_XATTR), value.encode("utf-8", "surrogateescape"))
        for key, value in member.pax_headers.items()
        if key.startswith(_PAX_XATTR) and not key.removeprefix(_PAX_XATTR).startswith(_OVERLAY_XATTRS)
    ]


class _Unpacker:
    """State of one unpack: the root descriptor, a cached parent directory, deferred times."""

    def __init__(self, root_fd: int, tar: tarfile.TarFile) -> None:
        self.root_fd = root_fd
        self.tar = tar
        self._parent: tuple[str, int] | None = None
        self._dir_times: list[tuple[str, int]] = []

    def close(self) -> None:
        self._forget_parent()

    def _forget_parent(self) -> None:
        if self._parent:
            os.close(self._parent[1])
            self._parent = None

    def _parent_fd(self, parent: str) -> int:
        # Regular files dominate layers and arrive grouped by directory: reuse the last
        # parent's descriptor. Anything else may change the tree, so it drops the cache.
        if self._parent and self._parent[0] == parent:
            return self._parent[1]
        self._forget_parent()
        fd = open_dir_in_root(self.root_fd, parent, create=True)
        self._parent = (parent, fd)
        return fd

    def add(self, member: tarfile.TarInfo) -> None:
        path = clean_member_path(member.name)
        if not member.isfile():
            self._forget_parent()
        if not path:
            if member.isdir():
                self._set_attributes(self.root_fd, None, member)
                self._dir_times.append(("", member.mtime))
            return
        parent, _, name = path.rpartition("/")
        if name.startswith(WHITEOUT_PREFIX):
            self._whiteout(parent, name)
            return
        dir_fd = self._parent_fd(parent)
        if member.isdir():
            self._directory(dir_fd, name, path, member)
        elif member.isfile():
            self._regular(dir_fd, name, member)
        elif member.issym():
            _remove_entry(dir_fd, name)
            os.symlink(member.linkname, name, dir_fd=dir_fd)
            self._set_attributes(dir_fd, name, member)
        elif member.islnk():
            self._hard_link(dir_fd, name, member)
        elif member.ischr() or member.isblk() or member.isfifo():
            _remove_entry(dir_fd, name)
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK if member.isblk() else stat.S_IFIFO
            device = os.makedev(member.devmajor, member.devminor) if not member.isfifo() else 0
            os.mknod(name, kind | 0o600, device, dir_fd=dir_fd)
            self._set_attributes(dir_fd, name, member)
        else:
            raise UnsafeLayer(f"tar member {member.name!r} has an unsupported type {member.type!r}")

    def _whiteout(self, parent: str, name: str) -> None:
        dir_fd = self._parent_fd(parent)
        if name == OPAQUE_MARK:
            os.setxattr(dir_fd, OPAQUE_XATTR, b"y")
            return
        if name.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return
        target = name.removeprefix(WHITEOUT_PREFIX)
        if target in ("", ".", ".."):
            raise UnsafeLayer(f"malformed whiteout {name!r} in {parent or '/'!r}")
        _remove_entry(dir_fd, target)
        os.mknod(target, stat.S_IFCHR, os.makedev(0, 0), dir_fd=dir_fd)

    def _directory(self, dir_fd: int, name: str, path: str, member: tarfile.TarInfo) -> None:
        previous = None
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is None or not stat.S_ISDIR(st.st_mode):
            previous = _remove_entry(dir_fd, name)
            os.mkdir(name, 0o700, dir_fd=dir_fd)
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        try:
            if previous is not None and is_whiteout(previous):
                # Deleted then re-created in one layer: hide what lower layers had there.
                os.setxattr(fd, OPAQUE_XATTR, b"y")
            self._set_attributes(fd, None, member)
        finally:
            os.close(fd)
        self._dir_times.append((path, member.mtime))

    def _regular(self, dir_fd: int, name: str, member: tarfile.TarInfo) -> None:
        _remove_entry(dir_fd, name)
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        try:
            source = self.tar.extractfile(member)
            assert source is not None  # a regular member always has data
            with os.fdopen(os.dup(fd), "wb", closefd=True) as out:
                shutil.copyfileobj(source, out, _CHUNK)
            self._set_attributes(fd, None, member)
        finally:
            os.close(fd)

    def _hard_link(self, dir_fd: int, name: str, member: tarfile.TarInfo) -> None:
        target = clean_member_path(member.linkname)
        if not target:
            raise UnsafeLayer(f"hard link {member.name!r} points at the layer root")
        target_parent, _, target_name = target.rpartition("/")
        try:
            source_fd = open_dir_in_root(self.root_fd, target_parent, create=False)
        except FileNotFoundError:
            raise UnsafeLayer(f"hard link {member.name!r} points at missing {member.linkname!r}") from None
        try:
            _remove_entry(dir_fd, name)
            os.link(target_name, name, src_dir_fd=source_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            raise UnsafeLayer(f"hard link {member.name!r} points at missing {member.linkname!r}") from None
        finally:
            os.close(source_fd)

    def _set_attributes(self, fd: int, name: str | None, member: tarfile.TarInfo) -> None:
        """Owner, then mode (chown clears setuid bits), xattrs and times of an entry.

        ``name`` None: ``fd`` is the entry itself; else the entry is ``name`` in ``fd``.
        """
        mode = member.mode & 0o7777
        times = (int(member.mtime) * 10**9,) * 2
        if name is None:
            os.fchown(fd, member.uid, member.gid)
            os.fchmod(fd, mode)
            xattr_target: int | str = fd
        else:
            os.chown(name, member.uid, member.gid, dir_fd=fd, follow_symlinks=False)
            if not member.issym():
                os.chmod(name, mode, dir_fd=fd)
            xattr_target = f"/proc/self/fd/{fd}/{name}"
        for key, value in _xattrs(member):
            try:
                if isinstance(xattr_target, int):
                    os.setxattr(xattr_target, key, value)
                else:
                    os.setxattr(xattr_target, key, value, follow_symlinks=False)
            except OSError:
                pass  # a file system without that xattr namespace: keep the file, lose the xattr
        if member.isdir():
            return
        if name is None:
            os.utime(fd, ns=times)
        else:
            os.utime(name, ns=times, dir_fd=fd, follow_symlinks=False)

    def finish(self) -> None:
        """Set directory times, deepest first, now that nothing more is written into them."""
        self._forget_parent()
        for path, mtime in reversed(self._dir_times):
            fd = open_dir_in_root(self.root_fd, path, create=False) if path else os.dup(self.root_fd)
            try:
                os.utime(fd, ns=(int(mtime) * 10**9,) * 2)
            finally:
                os.close(fd)


def unpack_layer(stream: BinaryIO, destination: str) -> tuple[str, int]:
    """Unpack an uncompressed tar stream into ``destination`` (an empty directory).

    Args:
        stream: the tar's bytes (already decompressed).
        destination: the directory to fill; nothing is written outside it.
    Returns:
        The sha256 digest and size of the tar bytes read (the layer's diff id and size).
        Raises ``UnsafeLayer`` (an ``InvalidArgument``) for a malformed or unsafe tar.
    """
    reader = HashingReader(stream)
    root_fd = os.open(destination, _DIR_FLAGS)
    try:
        # Stream reads of 64 KiB rather than tarfile's 10 KiB: a tenth of the trips through
        # the Python readers for big files, while small members stay cheap to slice out.
        with tarfile.open(fileobj=reader, mode="r|", errors="surrogateescape", bufsize=_TAR_READ) as tar:  # type: ignore[call-overload]
            unpacker = _Unpacker(root_fd, tar)
            try:
                for member in tar:
                    unpacker.add(member)
                unpacker.finish()
            finally:
                unpacker.close()
        reader.drain()
    except tarfile.TarError as exc:
        raise UnsafeLayer(f"not a valid tar archive: {exc}") from None
    except Exception as exc:
        if not is_data_error(exc):
            raise
        raise UnsafeLayer(f"corrupt or truncated layer: {exc}") from None
    finally:
        os.close(root_fd)
    return reader.digest, reader.size


class Abandoned(Exception):
    """The file a ``GrowingFile`` follows will not be completed."""


class GrowingFile(io.RawIOBase):
    """A raw stream over a file (an open descriptor) that another process is still writing.

    ``control`` tells how far the file is written, in lines: ``N`` (the file holds at
    least N bytes) and finally ``end N`` (the file is complete at N bytes). A read waits
    for bytes announced but not yet consumed, and returns 0 only after ``end`` and its
    last byte. ``control`` ending without ``end`` (the download was abandoned) raises
    ``Abandoned``.
    """

    def __init__(self, fd: int, control: BinaryIO) -> None:
        super().__init__()
        self._fd = fd
        self._control = control
        self._position = 0
        self._available = 0
        self._end: int | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Fill ``buffer`` with announced bytes, waiting for some if none are left."""
        while self._position >= self._available:
            if self._end is not None:
                return 0
            self._wait()
        view = memoryview(buffer)[: self._available - self._position]
        got = os.preadv(self._fd, [view], self._position)
        if got < len(view):
            raise OSError(f"the layer file is shorter ({self._position + got} bytes) than announced ({self._available})")
        self._position += got
        return got

    def _wait(self) -> None:
        line = self._control.readline()
        if not line:
            raise Abandoned("the layer download was abandoned")
        words = line.split()
        if words[0] == b"end":
            self._end = self._available = int(words[1])
        else:
            self._available = max(self._available, int(words[0]))


# The child skips ``site`` and the packages' ``__init__`` modules (plugin glue it does not
# need), half of an interpreter start: it takes the parent's module path, and each package
# is entered into ``sys.modules`` with the parent's ``__path__``, which is all that
# importing this module (and the optional decompressors) needs.
_CHILD = """
import sys, types
sys.path[:] = {path!r}
for name, path in {packages!r}:
    package = types.ModuleType(name)
    package.__path__ = path
    sys.modules[name] = package
from {module} import _worker_main
sys.exit(_worker_main(int(sys.argv[1]), sys.argv[2]))
"""


def _parents(module: str) -> list[str]:
    """The packages above a module, outermost first: "a.b.c" -> ["a", "a.b"]."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _worker_main(source: int, destination: str) -> int:
    """Child side of ``unpack_growing``: unpack, then print a JSON result line."""
    growing = GrowingFile(source, sys.stdin.buffer)
    try:
        digest, size = unpack_layer(decompressed(io.BufferedReader(growing, _CHUNK)), destination)
        result: dict[str, object] = {"digest": digest, "size": size}
    except UnsafeLayer as exc:
        result = {"unsafe": str(exc)}
    except InvalidArgument as exc:
        result = {"invalid": str(exc)}
    except OSError as exc:
        result = {"error": str(exc), "errno": exc.errno}
    except Abandoned as exc:
        result = {"abandoned": str(exc)}
    finally:
        os.close(source)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


async def unpack_growing(source: int, destination: str, sizes: AsyncIterable[tuple[int, bool]]) -> tuple[str, int]:
    """Unpack ``source`` into ``destination`` in a child process while the file grows.

    Args:
        source: a descriptor of the layer file (compressed or not), possibly still being
            written (and renamed: the child reads the descriptor, not the path).
        destination: an empty directory to fill; nothing is written outside it.
        sizes: (bytes the file holds, whether that is its final size), as they become
            known; bytes must be flushed to the file before they are announced. The
            child waits for a final size before it can finish, so a caller gates the
            result on its own checks (the blob digest) by announcing the end only then.
    Returns:
        The sha256 digest and size of the uncompressed tar (as ``unpack_layer``).
        Raises ``UnsafeLayer`` for a malformed or unsafe tar, ``OSError`` when writing
        fails; the child is killed if the caller is cancelled or ``sizes`` ends early.
    """
    # Imported here, not at the top: the child process starts faster without them.
    import subprocess

    import trio

    packages = [(name, list(sys.modules[name].__path__)) for name in _parents(__name__)]
    process = await trio.lowlevel.open_process(
        [sys.executable, "-I", "-S", "-c", _CHILD.format(path=sys.path, packages=packages, module=__name__), str(source), destination],
        pass_fds=(source,), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    try:
        final = False
        async for available, final in sizes:
            try:
                await process.stdin.send_all(f"{'end ' if final else ''}{available}\n".encode())
            except trio.BrokenResourceError:
                break  # the child stopped early (an unsafe member): its answer says why
            if final:
                break
        await process.stdin.aclose()
        output = b"".join([chunk async for chunk in process.stdout])
        await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            with trio.CancelScope(shield=True):
                await process.wait()
        with trio.CancelScope(shield=True):
            await process.stdin.aclose()
            await process.stdout.aclose()
    # The result is the last line; anything before it is the interpreter's own complaints.
    try:
        result = json.loads(output.splitlines()[-1])
    except (ValueError, IndexError):
        text = output.decode(errors="replace")[-500:]
        raise OSError(f"the layer unpacker failed (exit status {process.returncode}): {text}") from None
    if "digest" in result and final:
        return result["digest"], result["size"]
    if "unsafe" in result:
        raise UnsafeLayer(result["unsafe"])
    if "invalid" in result:
        raise InvalidArgument(result["invalid"])
    if "error" in result:
        raise OSError(result["errno"], result["error"]) if result["errno"] else OSError(result["error"])
    raise InvalidArgument("the layer file ended before its download was complete")

