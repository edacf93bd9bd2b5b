"""JSON files written atomically, and the canonical hash that seals a result document."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

HASH_FIELD = "sha256"


def canonical_bytes(doc: dict[str, Any]) -> bytes:
    """Canonical JSON of ``doc`` without its hash field: sorted keys, no whitespace, UTF-8."""
    body = {k: v for k, v in doc.items() if k != HASH_FIELD}
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def body_sha256(doc: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(doc)).hexdigest()


def seal(doc: dict[str, Any]) -> dict[str, Any]:
    """Return ``doc`` with its ``sha256`` set over the canonical body."""
    sealed = dict(doc)
    sealed[HASH_FIELD] = body_sha256(doc)
    return sealed


def finite_or_none(value: Any) -> Any:
    """JSON has no NaN or infinity: such values become null (callers record why)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see either the old file or the whole new one.

    The temporary file lives in the same directory (same file system) and is removed if
    anything fails, so no partial file is ever left behind.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write_json(path: Path, doc: Any) -> None:
    atomic_write_text(path, json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def sanitize(value: Any) -> Any:
    """Recursively replace NaN and infinities (e.g. a diverged loss) by null."""
    if isinstance(value, dict):
        return {k: sanitize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [sanitize(v) for v in value]
    return finite_or_none(value)
