"""The vendor list, found by name: one module per vendor under ``bench/devices/``.

Adding a vendor adds ``bench/devices/<vendor>.py`` (and ``images/<vendor>/``); no central list
is edited. Everything that names the vendors (the CLI and invoke help, the image specs, the
``auto`` detection) reads :data:`VENDORS`, and a test checks that the JSON schemas' vendor
enums and the ``images/`` folders say the same. Reading the folder imports nothing, so host
code (``tasks.py``) can use it without loading torch.
"""

from __future__ import annotations

from pathlib import Path

DEVICES_DIR = Path(__file__).resolve().parent / "devices"
NOT_VENDORS = frozenset({"base"})  # the interface module; private helpers start with "_"
REFERENCE = "cpu"  # listed first: every comparison is against the host CPU


def discover(directory: Path = DEVICES_DIR) -> tuple[str, ...]:
    """Vendor names from the backend modules' file names: the reference first, then A-Z."""
    names = sorted(p.stem for p in directory.glob("*.py")
                   if p.stem not in NOT_VENDORS and not p.stem.startswith("_"))
    return tuple(sorted(names, key=lambda n: (n != REFERENCE, n)))


VENDORS: tuple[str, ...] = discover()


def vendor_list(sep: str = ", ") -> str:
    """``cpu, ascend, corex, ...`` for help texts and error messages."""
    return sep.join(VENDORS)
