"""The vendor list, found by name: one module per vendor under ``bench/devices/``.

Adding a vendor adds ``bench/devices/<vendor>.py`` (and ``images/<vendor>/``); no central list
is edited. Everything that names the vendors (the CLI and invoke help, the image specs, the
``auto`` detection) reads :data:`VENDORS`, and a test checks that the JSON schemas' vendor
enums and the ``images/`` folders say the same. Reading the folder imports nothing, so host
code (``tasks.py``) can use it without loading torch; which vendors are present is asked of a
child process (``DetectionChild``), for the same reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
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


# -- which vendors this environment can use, asked of a child process -------------------------
DETECT_TIMEOUT_S = 120.0  # a ceiling for torch and vendor extensions to load on a busy host
DETECT_STATES = ("available", "absent", "unknown")


@dataclass(frozen=True)
class Presence:
    """One vendor's detection as ``python -m bench.devices`` answered it (``unknown``: it did
    not answer, and ``reason`` says why)."""

    vendor: str
    state: str  # one of DETECT_STATES
    reason: str


class DetectionChild:
    """``python -m bench.devices`` in a child process of its own session: detection imports
    torch and the vendors' extensions, which the caller need not load (and a hanging driver
    must not hang the caller). Start it first, read the answers when they are needed."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.devices"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)

    def result(self, timeout_s: float = DETECT_TIMEOUT_S) -> list[Presence]:
        """Every vendor's presence, in ``VENDORS``' order."""
        try:
            out, err = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            why = (f"detection did not answer within {timeout_s:g} s (`python -m bench.devices` "
                   "shows where it waits)")
            return [Presence(v, "unknown", why) for v in VENDORS]
        found: dict[str, Presence] = {}
        for line in out.splitlines():
            try:
                d = json.loads(line)
                found[d["vendor"]] = Presence(d["vendor"], "available" if d["available"]
                                              else "absent", str(d["reason"]))
            except (ValueError, KeyError, TypeError):
                continue
        last = (err.strip().splitlines() or ["no message"])[-1]
        why = f"detection ended without an answer (exit code {self.proc.returncode}: {last})"
        return [found.get(v) or Presence(v, "unknown", why) for v in VENDORS]

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.communicate()
