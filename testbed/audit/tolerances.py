"""Per-metric tolerances of the audit: the band each metric is held to, and the comparison of
one submitted value with its re-measurement.

Which band a metric gets is the metric catalogue's (``bench/metrics.yaml``: its band class,
or ignored with the reason); how wide each class is, the tolerance file's (defaults in
``tolerances.yaml`` next to this module, schema-checked), which may also leave metrics out
by name or pattern."""

from __future__ import annotations

import fnmatch
import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.documents import Band, JsonObject, TolerancesRecord
from bench.errors import UserError
from bench.metrics import EXACT, IGNORED, catalogue, spec_for
from bench.schema import read_yaml_file

DEFAULT_FILE = Path(__file__).resolve().parent / "tolerances.yaml"
# The band class of a metric the catalogue does not declare (a submitter's own workload's).
UNDECLARED_BAND = "other"


@dataclass(frozen=True)
class Size:
    """How wide a band class is: ``rel`` (a fraction of the submitted value), ``abs`` (an
    amount in the metric's unit), or ``ignore`` (the class is left out, for this reason)."""

    rel: float | None = None
    abs: float | None = None
    ignore: str | None = None

    def as_dict(self) -> dict[str, float | str]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Rule:
    """The band one metric is held to: its class and that class's size, ``equal`` (the class
    ``exact``) or ``ignore`` (the reason it is left out)."""

    band: str
    rel: float | None = None
    abs: float | None = None
    equal: bool = False
    ignore: str | None = None

    def as_dict(self) -> Band:
        out: Band = {"band": self.band}
        for key in ("rel", "abs", "ignore"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.equal:
            out["equal"] = True
        return out

    def describe(self) -> str:
        if self.ignore:
            return "ignored"
        if self.equal:
            return "equal"
        return f"±{self.rel:.0%}" if self.rel is not None else f"±{self.abs:g}"


@dataclass(frozen=True)
class Statistics:
    """How much evidence a metric's verdict needs (docs/audit.md, "The statistics")."""

    confidence: float = 0.95  # level of each metric's interval
    # A percentile p is judged only with at least this many latencies beyond it in every
    # repeat on both sides: 1 means p99 needs 100 latencies per repeat, p90 needs 10.
    min_tail_samples: float = 1.0


@dataclass(frozen=True)
class Reruns:
    """More evidence for an entry with an inconclusive metric that more repeats could decide:
    up to ``max`` more re-runs of it, each with at most ``repeats`` repeats (at least the
    submitted number; as many as predicted to decide) and its timed window ``window_factor``
    times as long where the window is a duration."""

    max: int = 2
    repeats: int = 5
    window_factor: float = 2.0


@dataclass(frozen=True)
class Noise:
    """When the summary says the machine was too noisy to judge: a metric's re-measured
    repeats spread more than ``max_cv``, or the host's load slowed a re-run by more than
    ``max_slowdown`` (1.25: a quarter slower)."""

    max_cv: float = 0.10
    max_slowdown: float = 1.25


@dataclass(frozen=True)
class Tolerances:
    path: Path
    sha256: str
    bands: dict[str, Size]
    max_speedup: float
    input_variants: int
    statistics: Statistics = Statistics()
    reruns: Reruns = Reruns()
    noise: Noise = Noise()
    ignore: dict[str, str] = field(default_factory=dict)  # name or pattern -> reason

    def rule_for(self, metric: str, vendor: str | None = None) -> Rule | None:
        """The band ``metric`` is held to on ``vendor``'s results: a user's ignore, else the
        catalogue's class (an undeclared metric's: ``other``) at this file's size."""
        for pattern, reason in self.ignore.items():
            if metric == pattern or fnmatch.fnmatchcase(metric, pattern):
                return Rule(band=IGNORED, ignore=reason)
        spec = spec_for(metric)
        band, reason = spec.band_for(vendor) if spec is not None else (UNDECLARED_BAND, None)
        if band == IGNORED:
            return Rule(band=band, ignore=catalogue().reason(reason))
        if band == EXACT:
            return Rule(band=band, equal=True)
        size = self.bands.get(band)
        if size is None:
            return None
        return Rule(band=band, rel=size.rel, abs=size.abs, ignore=size.ignore)

    def as_dict(self) -> TolerancesRecord:
        return {"path": str(self.path), "sha256": self.sha256,
                "caching": {"max_speedup": self.max_speedup,
                            "input_variants": self.input_variants},
                "statistics": asdict(self.statistics), "reruns": asdict(self.reruns),
                "noise": asdict(self.noise),
                "bands": {k: v.as_dict() for k, v in self.bands.items()},
                "ignore": dict(self.ignore)}


MAX_TOLERANCE_BYTES = 1 << 20


def load_tolerances(path: Path | None = None) -> Tolerances:
    """Read and check a tolerance file; a bad one is a ``UserError`` naming file and field."""
    path = Path(path) if path else DEFAULT_FILE
    if not path.exists():  # a FIFO or a directory exists: read_yaml_file says what it is
        raise UserError(f"Tolerance file {path} cannot be read: it does not exist.",
                        "Give an existing file with --tolerance (the defaults are "
                        f"{DEFAULT_FILE}).")
    # The shipped file is 5 kB: a limit keeps a file of a million rules from parsing for
    # minutes in gigabytes before the schema could refuse it.

    def refuse_version_1(doc: Any) -> None:
        if isinstance(doc, dict) and doc.get("version") == 1:
            raise UserError(
                f"Tolerance file {path} is version 1: its rules classify metrics by name "
                "patterns, which the metric catalogue (bench/metrics.yaml) does now.",
                "Write version: 2 with bands: (the size of each band class: rate, latency, "
                "power, ...) and ignore: (metric or pattern: reason); docs/audit.md shows the "
                f"format, {DEFAULT_FILE} the defaults.")

    doc = read_yaml_file(path, "tolerances", "Tolerance file", limit=MAX_TOLERANCE_BYTES,
                         before_check=refuse_version_1)
    raw = path.read_bytes()
    # A file without its own settings gets the default file's (not a second copy).
    defaults = _defaults() if path != DEFAULT_FILE else {}

    def section(name: str) -> JsonObject:
        return {**defaults.get(name, {}), **doc.get(name, {})}

    caching = section("caching")
    return Tolerances(path=path, sha256=hashlib.sha256(raw).hexdigest(),
                      bands={k: Size(**v) for k, v in section("bands").items()},
                      max_speedup=caching["max_speedup"],
                      input_variants=caching["input_variants"],
                      statistics=Statistics(**section("statistics")),
                      reruns=Reruns(**section("reruns")), noise=Noise(**section("noise")),
                      ignore=dict(doc.get("ignore") or {}))


def _defaults() -> JsonObject:
    return yaml.safe_load(DEFAULT_FILE.read_text(encoding="utf-8"))


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


def compare_value(rule: Rule | None, submitted: Any, remeasured: Any,
                  direction: str = "neither") -> tuple[str, str, float | None]:
    """(status, reason, relative deviation) of one metric compared as two numbers: pass,
    fail, ignored or not_measured (nothing was claimed, so there is nothing to check); for a
    metric with a ``direction`` (bench/metrics.yaml), a re-measurement better than claimed
    beyond the band is inconclusive (an under-claim), never a fail."""
    if rule is None:
        return "ignored", "the tolerance file sizes no band for this metric", None
    if rule.ignore:
        return "ignored", rule.ignore, None
    if submitted is None:
        if remeasured is None:
            return "not_measured", "neither run measured it", None
        return "not_measured", "the submission does not claim a value", None
    if remeasured is None:
        return "fail", "the submission claims a value the re-run could not measure", None
    deviation = None
    if _number(submitted) and _number(remeasured) and submitted != 0:
        deviation = (remeasured - submitted) / abs(submitted)
    if rule.equal or not (_number(submitted) and _number(remeasured)):
        ok = submitted == remeasured
        return ("pass" if ok else "fail",
                "equal" if ok else f"re-measured {remeasured!r}, submitted {submitted!r}",
                deviation)
    diff = remeasured - submitted
    allowed = rule.abs if rule.abs is not None else abs(submitted) * (rule.rel or 0.0)
    low, high = diff < -allowed, diff > allowed
    if low or high:
        where = "below" if low else "above"
        amount = f"{deviation:+.1%}" if deviation is not None else f"{diff:+g}"
        text = f"re-measured {amount} {where} the submitted value (allowed {rule.describe()})"
        if (high and direction == "higher") or (low and direction == "lower"):
            return "inconclusive", f"{text}: the re-run did better than claimed (an " \
                                   "under-claim), never what an inflated claim shows", deviation
        return "fail", text, deviation
    return "pass", f"within {rule.describe()}", deviation
