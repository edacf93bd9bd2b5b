"""Where the package finds its data files (schemas, suites, device spec sheets)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
SUITES_DIR = PACKAGE_DIR / "suites"


def schemas_dir() -> Path:
    """The JSON Schemas live at the repository root (``schemas/``); images copy the repo whole."""
    return Path(os.environ.get("BENCH_SCHEMAS_DIR", REPO_DIR / "schemas"))


def make_writable_dir(path: Path, what: str, fix: str) -> Path:
    """Create ``path`` (with its parents) and prove a file can be written in it, before any
    work is done: a path that is a file, read-only or not ours is a ``UserError`` naming it."""
    from bench.errors import UserError

    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise UserError(f"{what} {path} is not writable: {exc.strerror or exc}.", fix) from exc
    return path
