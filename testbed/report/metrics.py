"""What the report knows about each metric: title, which direction is better, scoring use.

Metric names and units come from the result documents (docs/telemetry.md, the large-model
protocol of section 6, the operator sweeps of section 7). A metric not listed here still
appears in the appendix tables under its own name; it is only left out of scores and charts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.errors import UserError
from testbed.report.scores import DEFAULT_A, LLM_TIERS, LOAD_METRIC

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


CATALOGUE: tuple[MetricInfo, ...] = (
    MetricInfo("throughput_items_per_s", "Throughput", +1, composite=True),
    # In micro-benchmarks throughput is the headline point's FLOP/s or B/s and latency that
    # point's time per call: scoring them again would count one measurement several times.
    MetricInfo("latency_mean_s", "Forward latency per batch, mean", -1, composite=True,
               modes=("infer",), not_in_groups=("micro",)),
    MetricInfo("latency_p50_s", "Latency per batch, p50", -1, chart=False),
    MetricInfo("latency_p90_s", "Latency per batch, p90", -1, chart=False),
    MetricInfo("latency_p95_s", "Latency per batch, p95", -1, chart=False),
    MetricInfo("latency_p99_s", "Latency per batch, p99", -1),
    MetricInfo("cold_load_s", "Cold start: load time", -1, chart=False),
    MetricInfo("cold_first_iter_s", "Cold start: first iteration", -1, chart=False),
    MetricInfo("device_util_pct", "Device utilisation", +1, composite=True, ratio_scale=False),
    MetricInfo("host_util_pct", "Host CPU utilisation, whole host", 0, ratio_scale=False,
               chart=False),
    MetricInfo("device_mem_used_bytes_peak", "Device memory used, peak", -1, composite=True),
    MetricInfo("device_mem_used_bytes_mean", "Device memory used, mean", -1, chart=False),
    MetricInfo("device_mem_used_pct_peak", "Device memory used, peak % of total", -1,
               ratio_scale=False, chart=False),
    MetricInfo("device_mem_used_pct_mean", "Device memory used, mean % of total", -1,
               ratio_scale=False),
    MetricInfo("framework_mem_peak_bytes", "Framework peak memory", -1),
    MetricInfo("power_w_mean", "Average power", -1, composite=True),
    MetricInfo("items_per_j", "Energy efficiency", +1, composite=True),
    MetricInfo("energy_j", "Energy in the timed windows", -1, chart=False),
    MetricInfo("temp_c_mean", "Average temperature", -1, composite=True, ratio_scale=False),
    MetricInfo("clock_hz_mean", "Clock, mean", 0, chart=False),
    MetricInfo("idle_power_w", "Idle power before the run", -1, chart=False),
    MetricInfo("flop_per_s", "Achieved FLOP/s", +1, composite=True, not_in_groups=("micro",)),
    MetricInfo("flop_per_item", "FLOPs per item", 0, chart=False),
    MetricInfo("bytes_per_item", "Least memory traffic per item", 0, chart=False),
    MetricInfo(LOAD_METRIC, "Model load time", -1, composite=True),
    # TGS restates the throughput per device (docs/training.md) and MFU the FLOP/s against
    # each device's own peak (every model workload, inference too), so neither is scored
    # again; the loss is no "better" across devices.
    MetricInfo("tgs_tokens_per_s", "TGS: tokens per device per second", +1),
    MetricInfo("mfu_pct", "MFU: model FLOPs utilisation", +1, ratio_scale=False),
    MetricInfo("iteration_time_mean_s", "Training iteration time, mean", -1, chart=False),
    MetricInfo("loss_final", "Loss after the last step", 0, chart=False),
    MetricInfo("checkpoint_save_s", "Checkpoint save time", -1),
    MetricInfo("checkpoint_save_blocking_s", "Checkpoint save, blocking part", -1,
               chart=False),
    MetricInfo("checkpoint_load_s", "Checkpoint load time", -1),
    *(MetricInfo(name, f"Max throughput, {title}", +1, composite=True)
      for name, title in LLM_TIERS),
)
BY_NAME = {m.name: m for m in CATALOGUE}

# The composite of the published evaluation: exactly these four metrics, equal weights.
PUBLISHED_COMPOSITE = ("throughput_items_per_s", "items_per_j", "power_w_mean",
                       "latency_mean_s")
COMPOSITES = ("default", "published")


def info(name: str) -> MetricInfo:
    return BY_NAME.get(name) or MetricInfo(name, name, 0, chart=False)


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
