"""The metric catalogue: what every metric a result can hold means, as data.

``bench/metrics.yaml`` (schema ``schemas/metrics.schema.json``) declares, per metric, its unit,
its direction (``higher`` or ``lower`` is better, or ``neither``), how the result's value is
made from the repeats (``aggregation``) and whether a loaded host moves it to its worse side
(``host_load``). Names that are generated (one per percentile, per precision, per collective)
are declared once as a family: a ``pattern`` (a regular expression the whole name matches)
with ``family`` saying how the names are made. The audit takes direction and aggregation from
here, never from a name's suffix; docs/metrics.md lists the catalogue.

Pure data access: no torch, read once per process (``catalogue()`` is cached).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

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
WORSENS, NONE = "worsens", "none"


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

    @property
    def worsened_by_load(self) -> bool:
        """A host slowed by other load moves it to its worse side (rates down, times up)."""
        return self.host_load == WORSENS and self.direction != NEITHER

    def matches(self, name: str) -> bool:
        return name == self.key if self.family is None else \
            re.fullmatch(self.key, name) is not None

    def as_dict(self) -> dict[str, Any]:
        out = {"direction": self.direction, "aggregation": self.aggregation,
               "host_load": self.host_load, "unit": self.unit}
        if self.family is not None:
            out["family"] = self.key
        return out


@dataclass(frozen=True)
class Catalogue:
    path: Path
    names: dict[str, MetricSpec]
    families: tuple[MetricSpec, ...]

    def get(self, name: str) -> MetricSpec | None:
        """The declaration of ``name``: its own, else the first family it belongs to."""
        spec = self.names.get(name)
        if spec is not None:
            return spec
        return next((f for f in self.families if f.matches(name)), None)

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Read and check a catalogue file (a bad one is a ``UserError`` naming file and field)."""
    from bench.errors import UserError
    from bench.schema import read_yaml_file

    path = Path(path) if path else CATALOGUE_FILE
    doc = read_yaml_file(path, "metrics", "Metric catalogue")
    names: dict[str, MetricSpec] = {}
    families: list[MetricSpec] = []
    for i, item in enumerate(doc["metrics"]):
        key = item.get("name", item.get("pattern"))
        spec = MetricSpec(key=key, unit=item["unit"], direction=item["direction"],
                          aggregation=item["aggregation"],
                          host_load=item.get("host_load", NONE),
                          description=item["description"], family=item.get("family"))
        if spec.family is None:
            if key in names:
                raise UserError(f"Metric catalogue {path} declares {key!r} twice "
                                f"($.metrics[{i}]).", "Keep one declaration per metric.")
            names[key] = spec
        else:
            try:
                re.compile(key)
            except re.error as exc:
                raise UserError(f"Metric catalogue {path}: $.metrics[{i}].pattern {key!r} is "
                                f"not a regular expression ({exc}).",
                                "Fix the pattern (Python's re syntax, matched against the "
                                "whole name).") from exc
            families.append(spec)
    return Catalogue(path=path, names=names, families=tuple(families))


@cache
def catalogue() -> Catalogue:
    """The bundled catalogue, read once."""
    return load_catalogue()


def spec_for(name: str) -> MetricSpec | None:
    """The bundled declaration of metric ``name`` (None: undeclared)."""
    return catalogue().get(name)
