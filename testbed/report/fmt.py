"""Numbers for people: SI values with their units, shortened the way the field writes them;
and CSV cells no spreadsheet runs as a formula (every CSV the report and the scorecard write)."""

from __future__ import annotations

import csv
import io
import math

from bench.errors import printable

SI_PREFIXES = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def _sig(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}g}"


def format_value(value: float | None, unit: str, digits: int = 4) -> str:
    """``value`` in ``unit`` (SI inside) as text: 1.2 GiB, 3.4 ms, 120 TFLOP/s, 42.1 %."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if unit == "B":
        for power, prefix in ((40, "Ti"), (30, "Gi"), (20, "Mi"), (10, "Ki")):
            if abs(value) >= 2**power:
                return f"{_sig(value / 2**power, digits)} {prefix}B"
        return f"{_sig(value, digits)} B"
    if unit == "s":
        if value != 0 and abs(value) < 1e-3:
            return f"{_sig(value * 1e6, digits)} µs"
        if abs(value) < 1:
            return f"{_sig(value * 1e3, digits)} ms"
        return f"{_sig(value, digits)} s"
    if unit == "degC":
        return f"{_sig(value, digits)} °C"
    if unit == "%":
        return f"{_sig(value, digits)} %"
    if unit in ("FLOP/s", "Hz", "B/s", "W", "J"):
        for scale, prefix in SI_PREFIXES:
            if abs(value) >= scale:
                return f"{_sig(value / scale, digits)} {prefix}{unit}"
    if abs(value) >= 1e6 or (value != 0 and abs(value) < 1e-3):
        return f"{value:.{digits - 1}e} {unit}"
    return f"{_sig(value, digits)} {unit}".rstrip()


def format_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def format_score(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A CSV cell no spreadsheet runs as a formula (OWASP's CSV injection advice): text
    starting with = + - @ tab or CR gets a leading ' (text that is a plain number, like
    -3.5, stays as it is). Control characters (a terminal escape sequence) are written
    escaped (``\x1b``)."""
    if isinstance(value, str):
        value = printable(value, newlines=True)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


class SafeCsvWriter:
    """``csv.writer`` whose every cell goes through ``csv_cell``."""

    def __init__(self, buf: io.StringIO) -> None:
        self._writer = csv.writer(buf, lineterminator="\n")

    def writerow(self, row: list[object]) -> None:
        self._writer.writerow([csv_cell(c) for c in row])
