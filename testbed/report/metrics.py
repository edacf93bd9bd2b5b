"""What the report knows about each metric: title, which direction is better, scoring use.

Every fact here is the metric catalogue's (bench/metrics.yaml): its title, its direction,
whether test / baseline of it means anything (its unit), and its ``report`` use (the
composite sets it is in, the modes where it is scored, the groups where it restates the
throughput, whether it gets a chart). A metric the catalogue does not declare still appears
in the appendix tables under its own name; it is only left out of scores and charts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.errors import UserError
from bench.metrics import MetricSpec, ReportUse, catalogue, spec_for
from testbed.report.scores import DEFAULT_A

MODES = ("train", "infer")
# rec: recommendation models, which only published tables bring (invoke import)
GROUPS = ("cv", "nlp", "llm", "rec", "micro", "function")
MODE_TITLES = {"train": "Training", "infer": "Inference"}
GROUP_TITLES = {"cv": "CV", "nlp": "NLP", "llm": "LLM", "rec": "recommendation",
                "micro": "micro-benchmarks", "function": "function"}


@dataclass(frozen=True)
class MetricInfo:
    name: str
    title: str
    better: int  # +1 larger is better, -1 smaller is better, 0 neither
    composite: bool = False  # in the composite score by default
    modes: tuple[str, ...] = MODES  # modes where it is scored
    # workload groups where it is not scored: it restates the throughput there
    not_in_groups: tuple[str, ...] = ()
    ratio_scale: bool = True  # test / baseline means something (not for degC or %)
    chart: bool = True  # gets a normalised bar chart
    composites: tuple[str, ...] = ()  # the composite sets it is in (default, published)


def _info(name: str, spec: MetricSpec) -> MetricInfo:
    use = spec.report or ReportUse()
    return MetricInfo(name, spec.title_of(name), spec.better,
                      composite="default" in use.composites, modes=use.modes,
                      not_in_groups=use.not_in_groups, ratio_scale=spec.ratio_scale,
                      chart=use.chart, composites=use.composites)


# Every metric the catalogue declares by name, in its order (the report's order).
CATALOGUE: tuple[MetricInfo, ...] = tuple(
    _info(name, spec) for name, spec in catalogue().names.items())
BY_NAME = {m.name: m for m in CATALOGUE}

# The composite of the published evaluation: exactly these four metrics, equal weights.
PUBLISHED_COMPOSITE = tuple(m.name for m in CATALOGUE if "published" in m.composites)
COMPOSITES = ("default", "published")


def info(name: str) -> MetricInfo:
    known = BY_NAME.get(name)
    if known is not None:
        return known
    spec = spec_for(name)  # a family's member
    return _info(name, spec) if spec is not None else MetricInfo(name, name, 0, chart=False)


def direction(name: str) -> int:
    return info(name).better


@dataclass(frozen=True)
class ScoreSettings:
    """Composite-score settings: the scale ``a``, the relative weight of each metric and the
    name of the metric set (``published``: exactly the publication's four metrics;
    ``default``: this test-bed's wider set; ``custom``: either with weights changed)."""

    a: float = DEFAULT_A
    weights: dict[str, float] = field(default_factory=lambda: {
        m.name: 1.0 for m in CATALOGUE if m.composite})
    name: str = "default"

    @property
    def title(self) -> str:
        """How the report names the composite: only the publication's set is "published"."""
        return {"published": "Published composite (throughput +, items/J +, power −, "
                             "latency −, as the publication scores)",
                "default": "Composite over this test-bed's default metric set",
                }.get(self.name, "Composite with custom weights")

    def weights_for(self, mode: str, group: str | None = None) -> dict[str, float]:
        """Weights of the metrics scored in ``mode`` (latency is an inference metric) for a
        workload of ``group``."""
        return {m: k for m, k in self.weights.items()
                if mode in info(m).modes and group not in info(m).not_in_groups}


def parse_weights(items: list[str] | None, base: dict[str, float] | None = None
                  ) -> dict[str, float]:
    """``METRIC=K`` items (repeatable) over the default weights; K = 0 leaves a metric out."""
    weights = dict(base if base is not None else ScoreSettings().weights)
    for item in items or []:
        name, sep, text = item.partition("=")
        name = name.strip()
        try:
            k = float(text)
        except ValueError:
            k = -1.0
        if not sep or not math.isfinite(k) or k < 0:
            raise UserError(f"Score weight {item!r} is not METRIC=K with a finite K >= 0.",
                            "Write e.g. --weight throughput_items_per_s=2 or "
                            "--weight temp_c_mean=0.")
        if direction(name) == 0:
            scorable = ", ".join(m.name for m in CATALOGUE if m.better)
            raise UserError(f"Score weight for {name!r}: the report does not know whether "
                            "more or less of it is better.",
                            f"Weight one of: {scorable}.")
        weights[name] = k
    if not any(k > 0 for k in weights.values()):
        raise UserError("Every score weight is 0.", "Give at least one metric a weight > 0.")
    return weights


def composite_weights(name: str) -> dict[str, float]:
    """The metric set named by ``--composite``."""
    if name == "published":
        return dict.fromkeys(PUBLISHED_COMPOSITE, 1.0)
    if name == "default":
        return ScoreSettings().weights
    raise UserError(f"Composite {name!r} is not known.",
                    f"Use --composite {' or '.join(COMPOSITES)}.")


def score_settings(a: float | str | None = None, weights: list[str] | None = None,
                   composite: str = "default") -> ScoreSettings:
    """Settings from the command line: ``--score-a``, ``--weight METRIC=K`` items and
    ``--composite`` (the metric set the weights start from)."""
    base = composite_weights(composite)
    name = "custom" if weights else composite
    if a is None:
        return ScoreSettings(weights=parse_weights(weights, base), name=name)
    try:
        value = float(a)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise UserError(f"Score scale a = {a!r} is not a positive number.",
                        "Give --score-a a positive number (default 3).")
    return ScoreSettings(a=value, weights=parse_weights(weights, base), name=name)
