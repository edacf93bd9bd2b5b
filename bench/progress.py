"""Progress display: one status line per workload, rewritten in place on a terminal and
printed as plain, throttled lines otherwise (``docker logs``, CI)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from bench.config import Entry

PLAIN_EVERY_S = 2.0


def headline(doc: dict[str, Any]) -> str:
    m = doc.get("metrics", {})
    if doc["status"] != "ok":
        err = doc.get("error") or {}
        return f"{doc['status'].upper()}: {err.get('message', '')}"[:200]
    thr = m.get("throughput_items_per_s", {})
    text = f"{thr.get('value', 0):.4g} {thr.get('unit', '')}"
    if thr.get("cv") is not None:
        text += f" (cv {thr['cv'] * 100:.1f} %, n={thr['n']})"
    if m.get("flop_per_s", {}).get("value") and thr.get("unit") != "FLOP/s":
        text += f", {m['flop_per_s']['value'] / 1e9:.4g} GFLOP/s"
    if m.get("latency_p50_s", {}).get("value") is not None:
        text += f", p50 {m['latency_p50_s']['value'] * 1e3:.3g} ms"
    return text


class Display:
    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.quiet = quiet
        self.prefix = ""
        self.repeat = ""
        self._last_plain = 0.0
        self._lock = threading.Lock()
        self._live = False

    def _line(self, text: str, transient: bool = False) -> None:
        if self.quiet:
            return
        with self._lock:
            if self.tty:
                self.stream.write("\r\x1b[2K" + text + ("" if transient else "\n"))
                self._live = transient
            else:
                now = time.monotonic()
                if transient and now - self._last_plain < PLAIN_EVERY_S:
                    return
                self._last_plain = now
                self.stream.write(text + "\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        self._line(f"· {text}")

    def error(self, text: str) -> None:
        """A failure the user must hear of: printed with --quiet too (a disk that filled
        ended the run silently)."""
        with self._lock:
            self.stream.write(("\r\x1b[2K" if self.tty and self._live else "")
                              + f"error: {text}\n")
            self._live = False
            self.stream.flush()

    def status(self, text: str) -> None:
        """A status line that the next one replaces (throttled when not a terminal)."""
        self._line(text, True)

    def line(self, text: str) -> None:
        self._line(text)

    def run_started(self, run_id: str, suite: str, vendor: str, n: int, out: Path) -> None:
        self._line(f"run {run_id}: suite {suite}, {n} workload(s) on {vendor} -> {out}")

    def entry_started(self, index: int, total: int, entry: Entry) -> None:
        self.prefix = f"[{index + 1}/{total}] {entry.id}"
        self._line(f"{self.prefix}  starting ({entry.config}, {entry.precision})", True)

    def repeat_started(self, repeat: int, total: int) -> None:
        self.repeat = f"repeat {repeat + 1}/{total}"
        self._line(f"{self.prefix}  {self.repeat}  starting process", True)

    def progress(self, event: dict[str, Any]) -> None:
        phase = event.get("phase")
        if phase == "setup":
            detail = "setting up"
        elif phase == "warmup":
            detail = f"warm-up {event['done']}/{event['total']}"
        elif phase == "timed":
            detail = (f"timed {event['done']}/{event['min_iters']} it, "
                      f"{event['elapsed_s']:.1f}/{event['min_duration_s']:g} s")
        else:
            detail = str(event.get("message", phase))
        self._line(f"{self.prefix}  {self.repeat}  {detail}", True)

    def entry_finished(self, entry: Entry, doc: dict[str, Any], path: Path,
                       problems: list[str]) -> None:
        mark = "ok" if doc["status"] == "ok" else doc["status"]
        self._line(f"{self.prefix}  {mark:<7} {headline(doc)}")
        for problem in problems:
            self._line(f"    schema problem in {path}: {problem}")

    def run_finished(self, manifest: dict[str, Any], out: Path) -> None:
        counts: dict[str, int] = {}
        for item in manifest["entries"]:
            counts[item["status"]] = counts.get(item["status"], 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        self._line(f"done: {summary}; results in {out}")
