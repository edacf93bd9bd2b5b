"""The metric catalogue: what every metric a result can hold means, as data.

``bench/metrics.yaml`` (schema ``schemas/metrics.schema.json``) declares, per metric, its
display name, unit, direction (``higher`` or ``lower`` is better, or ``neither``), how the
value is made from the repeats (``aggregation``) and from the grid points (``over_points``),
whether a loaded host moves it to its worse side (``host_load``), the audit's band class,
what it depends on, what it is derived from, the scorecard items it feeds and how the report
scores it. Names that are generated (one per percentile, per precision, per collective) are
declared once as a family: a ``pattern`` (a regular expression the whole name matches, whose
named groups fill the title) with ``family`` saying how the names are made. The runner, the
report, the audit, the store, the site and the scorecard read these facts from here, never
from a name's suffix; docs/metrics.md lists the fields.

Pure data access: no torch, read once per process (``catalogue()`` is cached).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from bench.documents import Declared, JsonObject

CATALOGUE_FILE = Path(__file__).resolve().parent / "metrics.yaml"

HIGHER, LOWER, NEITHER = "higher", "lower", "neither"
DIRECTIONS = (HIGHER, LOWER, NEITHER)
# How a result's value is made from its repeats (docs/metrics.md):
AGGREGATIONS = (
    "mean",     # the mean of the repeats' figures (``per_repeat``)
    "max",      # the largest repeat's figure: a peak over the run
    "min",      # the smallest repeat's figure: a count every repeat must reach
    "sum",      # the sum over the repeats: a count of events
    "pooled",   # the statistic over every repeat's samples together (latency percentiles)
    "derived",  # computed from other metrics of the same result (items_per_j)
    "once",     # one figure for the whole run, not per repeat (idle power)
    "equal",    # the same in every repeat: a property of the configuration or the device
)
# How a host slowed by other processes moves a metric: to its worse side (a rate down, a time
# up), down or up (a metric with no better side: the clock), or not at all.
WORSENS, LOWERS, RAISES, NONE = "worsens", "lowers", "raises", "none"
# The audit's band classes; their sizes are the tolerance file's (testbed/audit/tolerances.yaml).
BANDS = ("rate", "latency", "efficiency", "power", "memory", "utilisation", "clock",
         "search_rate", "agreement", "logit_error", "other", "exact", "ignored")
EXACT, IGNORED = "exact", "ignored"
# Units on no ratio scale: a share (bounded, a difference of 10 points is no ratio) or a
# temperature (an interval scale): test / baseline of them means nothing.
NO_RATIO_UNITS = frozenset({"%", "degC", "fraction", "bool"})


@dataclass(frozen=True)
class ReportUse:
    """How the report scores and draws a metric (the catalogue's ``report``)."""

    composites: tuple[str, ...] = ()  # the composite sets it is in (default, published)
    modes: tuple[str, ...] = ("train", "infer")  # where it is scored
    not_in_groups: tuple[str, ...] = ()  # workload groups where it restates the throughput
    chart: bool = False  # it gets a normalised bar chart


@dataclass(frozen=True)
class MetricSpec:
    """One declared metric, or one family of generated names."""

    key: str  # the name, or the family's pattern
    unit: str  # "{item}" stands for the workload's item unit (images, tokens, ...)
    direction: str
    aggregation: str
    host_load: str
    description: str
    family: str | None = None  # how the names are generated (None: an exact name)
    title: str = ""  # a family's may hold {group}s of its pattern
    band: str = "other"
    ignore: str | None = None  # the reason the audit does not judge it (band ignored)
    ignore_on: tuple[tuple[str, str], ...] = ()  # (vendor, reason): not judged there
    over_points: str | None = None
    depends_on: tuple[str, ...] = ()
    derived_from: tuple[str, ...] = ()
    always_derived: bool = False
    source: str | None = None
    headline: bool = False
    scorecard: tuple[str, ...] = ()
    report: ReportUse | None = None
    domain: tuple[tuple[str, str], ...] = ()  # (named group, dotted code constant)
    _regex: Any = field(default=None, compare=False, repr=False)

    @property
    def load_side(self) -> str | None:
        """Which way a host slowed by other load moves it: "lower", "higher" or None."""
        if self.host_load == WORSENS:
            return {HIGHER: LOWER, LOWER: HIGHER}.get(self.direction)
        return {LOWERS: LOWER, RAISES: HIGHER}.get(self.host_load)

    @property
    def worsened_by_load(self) -> bool:
        """A host slowed by other load moves it (rates down, times up, the clock down)."""
        return self.load_side is not None

    @property
    def audit_direction(self) -> str:
        """The side the audit takes as better than claimed: the metric's direction; for one
        with none that the host's load moves, the side away from the load's (a clock
        re-measured above the claim is what a submission measured on a busier machine
        shows, never an inflated claim)."""
        if self.direction != NEITHER:
            return self.direction
        return {LOWER: HIGHER, HIGHER: LOWER}.get(self.load_side or "", NEITHER)

    @property
    def better(self) -> int:
        """+1 larger is better, -1 smaller is better, 0 neither."""
        return {HIGHER: 1, LOWER: -1}.get(self.direction, 0)

    @property
    def ratio_scale(self) -> bool:
        """Whether test / baseline means something (not for a share or a temperature)."""
        return self.unit not in NO_RATIO_UNITS

    def matches(self, name: str) -> bool:
        if self.family is None:
            return name == self.key
        regex = self._regex or re.compile(self.key)
        return regex.fullmatch(name) is not None

    def title_of(self, name: str) -> str:
        """The display name of ``name`` (a family's groups filled in from it)."""
        if self.family is None:
            return self.title
        match = (self._regex or re.compile(self.key)).fullmatch(name)
        groups = {k: (v or "").replace("_", " ") for k, v in
                  (match.groupdict() if match else {}).items()}
        try:
            return self.title.format(**groups)
        except (KeyError, IndexError):
            return self.title

    def band_for(self, vendor: str | None) -> tuple[str, str | None]:
        """(band class, reason key of an ignore) on ``vendor``'s results."""
        for v, reason in self.ignore_on:
            if v == vendor:
                return IGNORED, reason
        return self.band, self.ignore

    def as_dict(self) -> Declared:
        out = {"direction": self.direction, "aggregation": self.aggregation,
               "host_load": self.host_load, "unit": self.unit, "band": self.band}
        if self.family is not None:
            out["family"] = self.key
        return out


@dataclass(frozen=True)
class Catalogue:
    path: Path
    names: dict[str, MetricSpec]
    families: tuple[MetricSpec, ...]
    reasons: dict[str, str] = field(default_factory=dict)
    order: tuple[MetricSpec, ...] = ()  # every entry, in the file's order

    def get(self, name: str) -> MetricSpec | None:
        """The declaration of ``name``: its own, else the first family it belongs to."""
        spec = self.names.get(name)
        if spec is not None:
            return spec
        return next((f for f in self.families if f.matches(name)), None)

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def reason(self, key: str | None) -> str | None:
        return self.reasons.get(key) if key else None

    def headline(self) -> str:
        """The metric results are ranked and listed by (``headline: true``)."""
        return next(s.key for s in self.names.values() if s.headline)

    def feeding(self, item: str) -> tuple[str, ...]:
        """The metrics that feed scorecard item ``item``, in the file's order."""
        return tuple(s.key for s in self.order if item in s.scorecard)

    def with_source(self, source: str) -> tuple[str, ...]:
        return tuple(s.key for s in self.order if s.source == source and s.family is None)


def _tuple(value: Any) -> tuple[str, ...]:
    return tuple(value or ())


def _spec(item: JsonObject) -> MetricSpec:
    key = item.get("name", item.get("pattern"))
    report = item.get("report")
    use = None if report is None else ReportUse(
        composites=_tuple(report.get("composites")),
        modes=_tuple(report.get("modes")) or ReportUse.modes,
        not_in_groups=_tuple(report.get("not_in_groups")), chart=bool(report.get("chart")))
    family = item.get("family")
    return MetricSpec(
        key=key, unit=item["unit"], direction=item["direction"],
        aggregation=item["aggregation"], host_load=item.get("host_load", NONE),
        description=item["description"], family=family, title=item["title"],
        band=item["band"], ignore=item.get("ignore"),
        ignore_on=tuple(sorted((item.get("ignore_on") or {}).items())),
        over_points=item.get("over_points"), depends_on=_tuple(item.get("depends_on")),
        derived_from=_tuple(item.get("derived_from")),
        always_derived=bool(item.get("always_derived")), source=item.get("source"),
        headline=bool(item.get("headline")), scorecard=_tuple(item.get("scorecard")),
        report=use, domain=tuple(sorted((item.get("domain") or {}).items())),
        _regex=re.compile(key) if family is not None else None)


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Read and check a catalogue file (a bad one is a ``UserError`` naming file and field)."""
    from bench.errors import UserError
    from bench.schema import read_yaml_file

    path = Path(path) if path else CATALOGUE_FILE
    doc = read_yaml_file(path, "metrics", "Metric catalogue")
    reasons = dict(doc["reasons"])
    names: dict[str, MetricSpec] = {}
    families: list[MetricSpec] = []
    order: list[MetricSpec] = []

    def refuse(what: str, fix: str) -> UserError:
        return UserError(f"Metric catalogue {path}: {what}", fix)

    for i, item in enumerate(doc["metrics"]):
        key = item.get("name", item.get("pattern"))
        if item.get("family") is not None:
            try:
                re.compile(key)
            except re.error as exc:
                raise refuse(f"$.metrics[{i}].pattern {key!r} is not a regular expression "
                             f"({exc}).", "Fix the pattern (Python's re syntax, matched "
                             "against the whole name).") from exc
        spec = _spec(item)
        for field_name, reason in (("ignore", spec.ignore), *(
                (f"ignore_on.{v}", r) for v, r in spec.ignore_on)):
            if reason is not None and reason not in reasons:
                raise refuse(f"$.metrics[{i}].{field_name} names the reason {reason!r}, which "
                             "$.reasons does not hold.", "Add it to reasons: or name one of: "
                             + ", ".join(sorted(reasons)) + ".")
        if spec.family is None:
            if key in names:
                raise refuse(f"declares {key!r} twice ($.metrics[{i}]).",
                             "Keep one declaration per metric.")
            names[key] = spec
        else:
            families.append(spec)
        order.append(spec)
    for spec in order:
        unknown = [m for m in spec.derived_from if m not in names]
        if unknown:
            raise refuse(f"{spec.key!r} is derived_from {unknown}, which it does not declare.",
                         "Declare them, or correct derived_from.")
    headlines = [s.key for s in names.values() if s.headline]
    if len(headlines) != 1:
        raise refuse(f"{len(headlines)} metrics are the headline ({headlines}); one must be.",
                     "Mark exactly one metric headline: true.")
    return Catalogue(path=path, names=names, families=tuple(families), reasons=reasons,
                     order=tuple(order))


@cache
def catalogue() -> Catalogue:
    """The bundled catalogue, read once."""
    return load_catalogue()


def spec_for(name: str) -> MetricSpec | None:
    """The bundled declaration of metric ``name`` (None: undeclared)."""
    return catalogue().get(name)


def title(name: str) -> str:
    """The display name of ``name``; an undeclared metric's is its name."""
    spec = spec_for(name)
    return spec.title_of(name) if spec is not None else name


def unit_of(name: str, item_unit: str | None = None) -> str | None:
    """The declared unit of ``name`` with ``{item}`` filled in (None: undeclared, or an item
    unit it needs and was not given)."""
    spec = spec_for(name)
    if spec is None:
        return None
    if "{item}" in spec.unit:
        return spec.unit.replace("{item}", item_unit) if item_unit is not None else None
    return spec.unit


def aggregation(name: str) -> str:
    """How the repeats' figures of ``name`` make its value (an undeclared one: the mean)."""
    spec = spec_for(name)
    return spec.aggregation if spec is not None else "mean"


def headline_metric() -> str:
    """The metric results are ranked and listed by."""
    return catalogue().headline()
