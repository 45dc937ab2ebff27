"""Helpers shared by the layer unpacking tests."""

from __future__ import annotations

import hashlib


def diff_id(data: bytes) -> str:
    """The diff id of an uncompressed layer tar."""
    return "sha256:" + hashlib.sha256(data).hexdigest()
