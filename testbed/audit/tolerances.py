"""Per-metric tolerances of the audit: a data file (defaults in ``tolerances.yaml`` next to this
module), schema-checked, and the comparison of one submitted value with its re-measurement."""

from __future__ import annotations

import fnmatch
import hashlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.errors import UserError
from bench.schema import read_yaml_file

DEFAULT_FILE = Path(__file__).resolve().parent / "tolerances.yaml"


@dataclass(frozen=True)
class Rule:
    patterns: tuple[str, ...]
    rel: float | None = None
    abs: float | None = None
    equal: bool = False
    ignore: str | None = None
    side: str = "both"
    vendors: tuple[str, ...] | None = None  # None: every vendor

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"match": list(self.patterns), "side": self.side}
        for key in ("rel", "abs", "ignore"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.equal:
            out["equal"] = True
        if self.vendors:
            out["vendors"] = list(self.vendors)
        return out

    def describe(self) -> str:
        if self.ignore:
            return "ignored"
        if self.equal:
            return "equal"
        band = f"±{self.rel:.0%}" if self.rel is not None else f"±{self.abs:g}"
        return band if self.side == "both" else f"{band} ({self.side} side only)"


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
    rules: tuple[Rule, ...]
    max_speedup: float
    input_variants: int
    statistics: Statistics = Statistics()
    reruns: Reruns = Reruns()
    noise: Noise = Noise()

    def rule_for(self, metric: str, vendor: str | None = None) -> Rule | None:
        for rule in self.rules:
            if rule.vendors and vendor not in rule.vendors:
                continue
            if any(fnmatch.fnmatchcase(metric, p) for p in rule.patterns):
                return rule
        return None

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "sha256": self.sha256,
                "caching": {"max_speedup": self.max_speedup,
                            "input_variants": self.input_variants},
                "statistics": asdict(self.statistics), "reruns": asdict(self.reruns),
                "noise": asdict(self.noise),
                "rules": [r.as_dict() for r in self.rules]}


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
    doc = read_yaml_file(path, "tolerances", "Tolerance file", limit=MAX_TOLERANCE_BYTES)
    raw = path.read_bytes()
    rules = []
    for item in doc["rules"]:
        match = item["match"]
        rules.append(Rule(patterns=tuple([match] if isinstance(match, str) else match),
                          rel=item.get("rel"), abs=item.get("abs"),
                          equal=bool(item.get("equal")), ignore=item.get("ignore"),
                          side=item.get("side", "both"),
                          vendors=tuple(item["vendors"]) if "vendors" in item else None))
    # A file without its own settings gets the default file's (not a second copy).
    defaults = _defaults() if path != DEFAULT_FILE else {}

    def section(name: str) -> dict[str, Any]:
        return {**defaults.get(name, {}), **doc.get(name, {})}

    caching = section("caching")
    return Tolerances(path=path, sha256=hashlib.sha256(raw).hexdigest(), rules=tuple(rules),
                      max_speedup=caching["max_speedup"],
                      input_variants=caching["input_variants"],
                      statistics=Statistics(**section("statistics")),
                      reruns=Reruns(**section("reruns")), noise=Noise(**section("noise")))


def _defaults() -> dict[str, Any]:
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
        return "ignored", "no tolerance rule matches this metric", None
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
    if (low and rule.side in ("both", "lower")) or (high and rule.side in ("both", "higher")):
        where = "below" if low else "above"
        amount = f"{deviation:+.1%}" if deviation is not None else f"{diff:+g}"
        text = f"re-measured {amount} {where} the submitted value (allowed {rule.describe()})"
        if (high and direction == "higher") or (low and direction == "lower"):
            return "inconclusive", f"{text}: the re-run did better than claimed (an " \
                                   "under-claim), never what an inflated claim shows", deviation
        return "fail", text, deviation
    return "pass", f"within {rule.describe()}", deviation
