"""Reference result sets that ship with the test-bed, for comparing a first run with
(``invoke report -r results/<run> --reference NAME``).

Each is a run directory (its results and manifest, sealed and schema-valid) measured with the
bundled suites; ``README.md`` beside them says where and when. A name that is not bundled is
taken as a path (any run directory, for example a colleague's), so a lab can keep its own.
"""

from __future__ import annotations

from pathlib import Path

from bench.errors import UserError

REFERENCES_DIR = Path(__file__).resolve().parent


def bundled() -> list[str]:
    """The names of the bundled reference sets."""
    return sorted(p.parent.name for p in REFERENCES_DIR.glob("*/manifest.json"))


def resolve(name_or_path: str) -> Path:
    """A bundled set's directory, or an existing path; otherwise a UserError naming both."""
    if (REFERENCES_DIR / name_or_path / "manifest.json").is_file():
        return REFERENCES_DIR / name_or_path
    path = Path(name_or_path)
    if path.exists():
        return path
    names = ", ".join(bundled()) or "none"
    raise UserError(f"Reference {name_or_path!r} is neither a bundled reference set nor an "
                    "existing path.",
                    f"Name one of the bundled sets ({names}) or a run directory.")
