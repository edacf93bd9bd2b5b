"""Progress display: one status line per workload, rewritten in place on a terminal and
printed as plain, throttled lines otherwise (``docker logs``, CI). A disturbed entry ends with a
``warning:`` line, and the run with a summary of them and the fix."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from bench.config import Entry
from bench.contention import warning_text
from bench.documents import Disturbed, DisturbedReason, ManifestDoc, ProgressEvent, ResultDoc

PLAIN_EVERY_S = 2.0


def headline(doc: ResultDoc) -> str:
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
        self._explained = False
        self.disturbed: list[tuple[str, Disturbed]] = []  # (entry id, its record)

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

    def progress(self, event: ProgressEvent) -> None:
        phase = event.get("phase")
        if phase == "setup":
            detail = "setting up"
        elif phase == "warmup":
            detail = f"warm-up {event['done']}/{event['total']}"
        elif phase == "timed":
            if not self._explained:  # once per run, as a line the status line does not replace
                self._explained = True
                self.note("timed a/b it, c/d s: a iterations done of at least b, c seconds "
                          "elapsed of a timed window of at least d (the run rules)")
            detail = (f"timed {event['done']}/{event['min_iters']} it, "
                      f"{event['elapsed_s']:.1f}/{event['min_duration_s']:g} s")
        else:
            detail = str(event.get("message", phase))
        self._line(f"{self.prefix}  {self.repeat}  {detail}", True)

    def entry_finished(self, entry: Entry, doc: ResultDoc, path: Path,
                       problems: list[str]) -> None:
        mark = "ok" if doc["status"] == "ok" else doc["status"]
        self._line(f"{self.prefix}  {mark:<7} {headline(doc)}")
        for problem in problems:
            self._line(f"    schema problem in {path}: {problem}")
        disturbed = doc.get("disturbed") or {}
        if disturbed.get("value"):
            self.disturbed.append((entry.id, disturbed))
            if disturbed.get("require_quiet") and doc["status"] == "error":
                return  # the status line above says it, as an error
            self._line(f"warning: {warning_text(entry.id, disturbed)}")

    def run_finished(self, manifest: ManifestDoc, out: Path) -> None:
        counts: dict[str, int] = {}
        for item in manifest["entries"]:
            counts[item["status"]] = counts.get(item["status"], 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        self._line(f"done: {summary}; results in {out}")
        if self.disturbed:
            self._line("warning: "
                       + disturbed_summary(self.disturbed, len(manifest["entries"])))


def disturbed_summary(disturbed: list[tuple[str, Disturbed]], total: int) -> str:
    """One sentence for the end of a run: which entries were disturbed, and the fix of the
    reason most of them share (with its figure)."""
    codes: dict[str, list[DisturbedReason]] = {}
    for _, record in disturbed:
        for reason in record.get("reasons") or []:
            codes.setdefault(reason["code"], []).append(reason)
    names = ", ".join(e for e, _ in disturbed)
    one = len(disturbed) == 1
    text = (f"{len(disturbed)} of {total} entr{'y' if total == 1 else 'ies'} "
            f"{'was' if one else 'were'} disturbed while {'it' if one else 'they'} measured "
            f"({names}); {'its' if one else 'their'} figures are not representative")
    if codes:  # the most common reason (the first of FIXES on a tie), at its worst
        code = max(codes, key=lambda c: (len(codes[c]), -list(FIXES).index(c)
                                         if c in FIXES else -len(FIXES)))
        worst = max(codes[code], key=lambda r: r["figure"]
                    if isinstance(r["figure"], int | float) else 0)
        what = worst["message"].rpartition(": ")[0] or worst["message"]
        text += f": {FIXES.get(code, 're-run on a quiet machine')}; {what}"
    return text


# The fix of each reason code (bench.contention.judge), first in the run's summary.
FIXES = {
    "host_cpu": "re-run on a quiet machine",
    "slowdown": "re-run on a quiet machine",
    "steal": "re-run on a dedicated host or VM",
    "throttle": "let the device cool and check its cooling and power, then re-run",
    "device_processes": "stop the other processes on the device and re-run",
    "spread": "re-run on a quiet machine, with longer timed windows",
}
