"""htpasswd files for the registry's Basic authentication.

Entries are ``user:hash`` lines. bcrypt hashes (``$2y$``, ``$2b$``, ``$2a$``; what
``htpasswd -B`` writes and what the reference registry requires) need the ``bcrypt``
module; ``{SHA}`` (base64 SHA-1) hashes are checked without it. Other schemes are refused
at load time, naming the user, rather than failing every login later.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

from shoal.errors import InvalidArgument

_BCRYPT = ("$2y$", "$2b$", "$2a$")


class Htpasswd:
    """The users of an htpasswd file and a check of their passwords."""

    def __init__(self, entries: dict[str, str]) -> None:
        self._entries = entries

    @classmethod
    def load(cls, path: str | Path) -> Htpasswd:
        """Read and check an htpasswd file."""
        entries: dict[str, str] = {}
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise InvalidArgument(f"cannot read htpasswd file {path}: {exc}") from None
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not user:
                raise InvalidArgument(f"{path}:{number}: expected user:hash")
            if hashed.startswith(_BCRYPT):
                try:
                    import bcrypt  # noqa: F401
                except ImportError:
                    raise InvalidArgument(f"{path}: user {user!r} has a bcrypt hash; install the 'bcrypt' module") from None
            elif not hashed.startswith("{SHA}"):
                raise InvalidArgument(f"{path}: user {user!r} has an unsupported hash (use htpasswd -B for bcrypt)")
            entries[user] = hashed
        return cls(entries)

    def check(self, user: str, password: str) -> bool:
        """Tell whether ``password`` is ``user``'s (blocking: bcrypt is slow on purpose)."""
        hashed = self._entries.get(user)
        if hashed is None:
            return False
        if hashed.startswith("{SHA}"):
            expected = base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()
            return hmac.compare_digest(hashed[5:], expected)
        import bcrypt

        return bcrypt.checkpw(password.encode(), ("$2b$" + hashed[4:]).encode())
