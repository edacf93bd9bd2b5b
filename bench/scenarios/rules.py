"""The run rules of an MLPerf scenario: MLPerf's values (``mlperf.yaml``) unless a suite says
otherwise, resolved per workload, and the list of what a suite scaled.

A scenario entry's rules are resolved in layers, later ones winning: MLPerf's scenario
defaults, the MLPerf model the workload runs as (its server bound, sample counts), the
harness's own defaults for what MLPerf leaves to the submitter (dynamic batching, the Server
search), the suite's ``scenario_rules`` and the entry's. The resolved rules travel with the
entry (and into the result), so a re-run from the result runs the same rules.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.errors import UserError

MLPERF_FILE = Path(__file__).resolve().parent / "mlperf.yaml"
SCENARIOS = ("single_stream", "multi_stream", "server", "offline")
# LoadGen's names for them (TestScenario members, the summary's "Scenario" line).
LOADGEN_NAMES = {"single_stream": "SingleStream", "multi_stream": "MultiStream",
                 "server": "Server", "offline": "Offline"}
# Left to the submitter by MLPerf, so not in mlperf.yaml: how the system batches and how the
# Server's highest valid rate is searched. Recorded in every result like the rest.
HARNESS_DEFAULTS: dict[str, Any] = {
    "max_batch": None,          # None: the workload configuration's batch_size
    "batch_timeout_s": 0.002,   # Server: how long a batch waits for more queries
    "search_start_qps": None,   # None: half the capacity measured in the warm-up
    "search_precision": 0.05,   # stop when (upper - lower) / lower is at most this
    "search_max_steps": 12,
    "input_tokens": None,       # LLM serving: None takes the workload's reference point
    "output_tokens": None,
}


@dataclass(frozen=True)
class ScenarioRules:
    """Every setting of one scenario entry (units in the names, SI; percentiles in %)."""

    scenario: str
    mlperf_model: str | None = None
    target_latency_s: float | None = None
    target_latency_percentile: float | None = None
    ttft_latency_s: float | None = None
    tpot_latency_s: float | None = None
    samples_per_query: int | None = None
    min_duration_s: float = 600.0
    min_query_count: int = 100
    max_duration_s: float | None = None
    performance_sample_count: int = 1024
    max_batch: int | None = None
    batch_timeout_s: float = 0.002
    search_start_qps: float | None = None
    search_precision: float = 0.05
    search_max_steps: int = 12
    input_tokens: int | None = None
    output_tokens: int | None = None

    @property
    def token_latencies(self) -> bool:
        """LLM serving: LoadGen bounds first-token and per-token latency, not the query's."""
        return self.ttft_latency_s is not None or self.tpot_latency_s is not None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name for f in dataclasses.fields(ScenarioRules)} - {"scenario", "mlperf_model"}


@functools.cache
def mlperf_data() -> dict[str, Any]:
    return yaml.safe_load(MLPERF_FILE.read_text(encoding="utf-8"))


def mlperf_model(workload: str) -> str | None:
    """The MLPerf model whose rules a workload of the test-bed runs under."""
    for name, model in mlperf_data()["models"].items():
        if workload in model["workloads"]:
            return name
    return None


def mlperf_defaults(workload: str, scenario: str) -> dict[str, Any]:
    """MLPerf's values for ``workload`` in ``scenario`` (scenario defaults, then the model's)."""
    data = mlperf_data()
    out = dict(data["scenarios"][scenario])
    model = mlperf_model(workload)
    if model is not None:
        spec = data["models"][model]
        out["performance_sample_count"] = spec["performance_sample_count"]
        out.update(spec.get(scenario, {}))
    return out


def loadgen_seeds() -> dict[str, int]:
    return dict(mlperf_data()["seeds"])


def resolve(workload: str, scenario: str, *layers: dict[str, Any] | None,
            where: str = "the suite") -> ScenarioRules:
    """The rules of ``workload`` in ``scenario``: MLPerf's, the harness's, then ``layers``."""
    if scenario not in SCENARIOS:
        raise UserError(f"{where}: scenario {scenario!r} is not one of {', '.join(SCENARIOS)}.",
                        "Use single_stream, multi_stream, server or offline.")
    values: dict[str, Any] = {**HARNESS_DEFAULTS, **mlperf_defaults(workload, scenario)}
    for layer in layers:
        for key, value in (layer or {}).items():
            if key not in FIELDS:
                raise UserError(f"{where}: scenario rule {key!r} is unknown.",
                                f"Known rules: {', '.join(sorted(FIELDS))}.")
            values[key] = value
    rules = ScenarioRules(scenario=scenario, mlperf_model=mlperf_model(workload),
                          **{k: v for k, v in values.items() if k in FIELDS})
    check(rules, where)
    return rules


def check(rules: ScenarioRules, where: str) -> None:
    """Refuse rules LoadGen would run to a meaningless or endless test."""
    def bad(what: str, fix: str) -> UserError:
        return UserError(f"{where}: {what}", fix)

    if rules.scenario == "server" and not rules.token_latencies \
            and not (rules.target_latency_s or 0) > 0:
        raise bad("the server scenario needs a latency bound (target_latency_s > 0).",
                  "Set scenario_rules.target_latency_s, e.g. 0.015 for 15 ms.")
    if rules.scenario == "multi_stream" and not (rules.samples_per_query or 0) >= 1:
        raise bad("multi_stream needs samples_per_query >= 1.", "MLPerf uses 8.")
    if rules.min_duration_s <= 0 and rules.min_query_count < 1:
        raise bad("neither min_duration_s nor min_query_count asks for any query.",
                  "Give a positive minimum duration or query count.")
    if rules.performance_sample_count < 1:
        raise bad("performance_sample_count must be at least 1.",
                  "MLPerf's value is the model's (e.g. 1024 for resnet50).")
    if rules.max_batch is not None and rules.max_batch < 1:
        raise bad("max_batch must be at least 1.", "Leave it out to use the batch_size.")
    if not 0 < rules.search_precision < 1:
        raise bad("search_precision must be in (0, 1).", "E.g. 0.05 for 5 %.")
    if rules.target_latency_percentile is not None \
            and not 0 < rules.target_latency_percentile < 100:
        raise bad("target_latency_percentile must be in (0, 100).", "MLPerf uses 90 or 99.")


def scaled(rules: ScenarioRules, workload: str) -> list[dict[str, Any]]:
    """Each MLPerf setting the rules change, with MLPerf's value and the one used."""
    out = []
    for key, value in mlperf_defaults(workload, rules.scenario).items():
        used = getattr(rules, key)
        if used != value:
            out.append({"setting": key, "mlperf": value, "used": used})
    return out
