"""Where the package finds its data files (schemas, suites, device spec sheets)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
SUITES_DIR = PACKAGE_DIR / "suites"


def schemas_dir() -> Path:
    """The JSON Schemas live at the repository root (``schemas/``); images copy the repo whole."""
    return Path(os.environ.get("BENCH_SCHEMAS_DIR", REPO_DIR / "schemas"))
