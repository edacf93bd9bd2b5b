"""The metric catalogue (bench/metrics.yaml): every metric a bundled suite or a fixture writes
is declared, and the documents follow what is declared (the aggregation over repeats, the
unit). Every reader takes its facts from here: the runner, the audit (direction, aggregation,
band class: the tolerance file only sizes the classes), the report (titles, directions, units,
what is derived from what, what the composite holds), the store and site (the headline, what
scales with a device's speed) and the scorecard (which metric feeds which item); the tests at
the end check each reader against the catalogue.

The names come from every result document under tests/fixtures, results/reference and the
report's bundled references (testbed/report/references) and
from a run of the smoke suite at minimal rules here. The other small suites' workloads are run
by their own tests (function, scenarios, LLM, training, soak, YOLO, ...) through
``tests.conftest.run_bench``, which checks every run it makes the same way
(``undeclared_metrics``), so no test pays for a second run of them. (A run of the whole `all`
suite at minimal rules took 20 minutes on the project's loaded 2-core machine.)"""

from __future__ import annotations

import fnmatch
import importlib
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from bench.errors import UserError
from bench.metrics import (
    AGGREGATIONS,
    BANDS,
    DIRECTIONS,
    catalogue,
    load_catalogue,
    spec_for,
    title,
)
from tests.conftest import FIXTURES, ROOT, metric_names, run_bench, undeclared_metrics

REFERENCE = ROOT / "results" / "reference"
BUNDLED = ROOT / "testbed" / "report" / "references"  # the report's bundled reference runs
MINIMAL = ["--set", "rules.min_iters=1", "--set", "rules.warmup_iters=0",
           "--set", "rules.min_duration_s=0", "--set", "rules.repeats=2"]


def result_documents(*roots: Path) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for root in roots:
        for path in sorted(root.rglob("*.json")):
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(doc, dict) and doc.get("kind") == "bench.result":
                out.append((path, doc))
    return out


@pytest.fixture(scope="module")
def small_suite_runs(tmp_path_factory) -> list[Path]:
    """The smoke suite at minimal rules (two repeats, so that the per-repeat figures show
    the aggregation): a few seconds per entry."""
    runs = []
    for suite in ("smoke",):
        out = tmp_path_factory.mktemp(f"catalogue-{suite}") / "run"
        proc = run_bench("run", "--suite", suite, "--out", str(out), "--quiet", *MINIMAL,
                         timeout=900, check_metrics=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        runs.append(out)
    return runs


def documents(small_suite_runs: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    return result_documents(FIXTURES, REFERENCE, BUNDLED, *small_suite_runs)


def test_the_catalogue_is_valid_and_its_families_are_declared_as_such():
    cat = catalogue()
    assert cat.path.name == "metrics.yaml" and len(cat.names) > 50
    for spec in (*cat.names.values(), *cat.families):
        assert spec.direction in DIRECTIONS and spec.aggregation in AGGREGATIONS
        assert spec.description and spec.unit and spec.title and spec.band in BANDS
        assert (spec.band == "ignored") == (spec.ignore is not None), spec.key
        if spec.family is not None:
            assert spec.family.strip(), spec.key
    # A family never swallows a declared name (each name has one meaning).
    for name in cat.names:
        assert not [f.key for f in cat.families if f.matches(name)], name
    # The ones the audit misjudged by their names: a share of the peak is not a peak, and
    # higher is better for it; a peak over the repeats is their maximum.
    assert spec_for("pct_of_peak").aggregation == "mean"
    assert spec_for("pct_of_peak").direction == "higher"
    assert spec_for("mfu_pct").direction == "higher"
    assert spec_for("device_mem_used_bytes_peak").aggregation == "max"
    assert spec_for("latency_p99_s").aggregation == "pooled"
    assert spec_for("ttft_p90_s").direction == "lower"
    assert spec_for("no_such_metric") is None
    # A family's title is filled in from the name.
    assert title("ttft_p90_s") == "Time to first token, p90"
    assert title("all_reduce_busbw_bytes_per_s") == "all reduce: busbw, best size"
    assert title("no_such_metric") == "no_such_metric"
    assert cat.headline() == "throughput_items_per_s"


def _domain_values(dotted: str) -> list[str]:
    module, _, name = dotted.rpartition(".")
    return [str(v) for v in getattr(importlib.import_module(module), name)]


def _group_body(pattern: str, group: str) -> str:
    """The regular expression of a named group of ``pattern`` (balanced parentheses)."""
    start = pattern.index(f"(?P<{group}>") + len(f"(?P<{group}>")
    depth = 1
    for i in range(start, len(pattern)):
        depth += {"(": 1, ")": -1}.get(pattern[i], 0)
        if depth == 0:
            return pattern[start:i]
    raise ValueError(pattern)


def test_generated_names_follow_the_code_that_generates_them():
    """A family's named group takes the values of the code constant its ``domain`` names (a
    closed list exactly those); the names declared one by one where the report treats them
    apart (the latency percentiles, the TTFT tiers) are exactly the constants' names."""
    from bench.llm.generation import TTFT_TIERS
    from bench.stats import LATENCY_PERCENTILES

    cat = catalogue()
    checked = 0
    for spec in cat.families:
        for group, dotted in spec.domain:
            body, values = _group_body(spec.key, group), _domain_values(dotted)
            assert all(re.fullmatch(body, v) for v in values), (spec.key, values)
            if re.fullmatch(r"[a-z0-9_|]+", body):
                assert set(body.split("|")) == set(values), spec.key
            checked += 1
    assert checked >= 6
    latencies = [n for n in cat.names if re.fullmatch(r"latency_p[0-9.]+_s", n)]
    assert latencies == [f"latency_p{p}_s" for p in LATENCY_PERCENTILES]
    assert [n for n in cat.names if n.startswith("tier_")] == [t for t, _, _ in TTFT_TIERS]


OK = "title: X, unit: s, band: rate, description: d"
HEAD = "version: 1\nreasons: {disk: the disk's}\nmetrics:\n"


@pytest.mark.parametrize(("text", "where"), [
    (f"{HEAD}  - {{name: x, direction: up, aggregation: mean, headline: true, {OK}}}\n",
     "$.metrics[0].direction"),
    (f"{HEAD}  - {{name: x, direction: higher, aggregation: median, headline: true, {OK}}}\n",
     "$.metrics[0].aggregation"),
    (f"{HEAD}  - {{pattern: 'x_.*', direction: higher, aggregation: mean, {OK}}}\n",
     "$.metrics[0]"),
    (f"{HEAD}  - {{name: x, direction: higher, aggregation: mean, headline: true, unit: s, "
     "band: rate, description: d}\n", "$.metrics[0]"),
    (f"{HEAD}  - {{name: x, direction: higher, aggregation: mean, headline: true, {OK}}}\n"
     f"  - {{name: x, direction: lower, aggregation: mean, {OK}}}\n", "declares 'x' twice"),
    (f"{HEAD}  - {{pattern: 'x_(', family: f, direction: higher, aggregation: mean, {OK}}}\n",
     "not a regular expression"),
    (f"{HEAD}  - {{name: x, direction: higher, aggregation: mean, headline: true, {OK}, "
     "band: lower}\n", "$.metrics[0].band"),
    (f"{HEAD}  - {{name: x, direction: higher, aggregation: mean, headline: true, title: X, "
     "unit: s, band: ignored, description: d}\n", "$.metrics[0]"),
    (f"{HEAD}  - {{name: x, direction: higher, aggregation: mean, headline: true, title: X, "
     "unit: s, band: ignored, ignore: room, description: d}\n", "'room'"),
    (f"{HEAD}  - {{name: x, direction: higher, aggregation: mean, {OK}}}\n", "headline"),
])
def test_a_bad_catalogue_names_file_and_field(tmp_path, text, where):
    path = tmp_path / "metrics.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        load_catalogue(path)
    assert str(path) in str(err.value) and where in str(err.value)


@pytest.mark.slow
def test_every_metric_a_bundled_suite_or_fixture_writes_is_declared(small_suite_runs):
    docs = documents(small_suite_runs)
    assert len(docs) > 20
    seen = set()
    for _, doc in docs:
        seen |= set(metric_names(doc))
    missing = {}
    for path, doc in docs:
        for name in undeclared_metrics(doc):
            missing.setdefault(name, str(path.relative_to(path.anchor)))
    assert not missing, ("declare these in bench/metrics.yaml (name, unit, direction, "
                         f"aggregation, description): {missing}")
    # The runs made here did write the metrics the audit misjudged.
    assert {"pct_of_peak", "mfu_pct", "throughput_items_per_s", "latency_p99_s"} <= seen


def _numbers(values: list[Any]) -> list[float]:
    return [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]


def _figures(doc: dict[str, Any]):
    """(where, name, metric) of every metric of the document, its points' too."""
    for name, metric in (doc.get("metrics") or {}).items():
        yield "", name, metric
    for point in doc.get("points") or []:
        for name, metric in (point.get("metrics") or {}).items():
            yield f" {point['params']}", name, metric


AGGREGATE = {"mean": lambda v: math.fsum(v) / len(v), "max": max, "min": min, "sum": math.fsum}


@pytest.mark.slow
def test_the_documents_follow_the_declared_aggregation_and_unit(small_suite_runs):
    """Where a metric has per-repeat figures, its value is their declared aggregate (the
    audit pools re-runs the same way); an ``equal`` one is the same in every repeat. Its
    unit is the declared one ({item}: the workload's item unit)."""
    checked, wrong = set(), []
    for path, doc in documents(small_suite_runs):
        item = doc["workload"].get("item_unit")
        for where, name, metric in _figures(doc):
            spec = spec_for(name)
            if spec is None or not isinstance(metric, dict):
                continue
            unit = spec.unit.replace("{item}", str(item))
            if metric.get("unit") not in (unit, None) and "{item}" not in spec.unit:
                wrong.append(f"{path.name}{where} {name}: unit {metric.get('unit')!r}, "
                             f"declared {spec.unit!r}")
            per = metric.get("per_repeat") or []
            values = _numbers(per)
            value = metric.get("value")
            if len(values) < 2 or len(values) != len(per) or not _numbers([value]):
                continue
            if spec.aggregation in AGGREGATE:
                expected = AGGREGATE[spec.aggregation](values)
                if not math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-12):
                    wrong.append(f"{path.name}{where} {name}: value {value} is not the "
                                 f"{spec.aggregation} of {values}")
                checked.add(spec.aggregation)
            elif spec.aggregation == "equal" and len(set(values)) > 1:
                wrong.append(f"{path.name}{where} {name}: declared equal, repeats {values}")
    assert not wrong, wrong[:20]
    assert {"mean", "max"} <= checked, checked


# -- the readers take their facts from the catalogue ----------------------------------------
# One name of each family, beside every declared name: what the readers are asked about.
FAMILY_SAMPLES = ("points_ok", "points_oom", "h2d_pinned_bytes_per_s",
                  "d2h_pageable_pct_of_peak", "all_reduce_busbw_bytes_per_s",
                  "p2p_deepspeed_bits_per_s", "ttft_p90_s", "tpot_p99_s",
                  "image_latency_p50_s", "support_rate_fp16_pct", "passes_cpu_fallback",
                  "models_not_checked")


def every_name() -> list[str]:
    return [*catalogue().names, *FAMILY_SAMPLES]


def test_every_family_has_a_sample_here():
    assert all(any(f.matches(n) for n in FAMILY_SAMPLES) for f in catalogue().families)


# The band each metric got from the version 1 tolerance file's ordered name patterns, which
# the catalogue's band classes replace (tests/fixtures/audit-tolerances-v1.yaml is that file).
V1_CLASSES = {  # the v1 rule's first pattern -> the band class that replaced it
    "model_load_s": "ignored", "temp_c_mean": "ignored", "host_util_pct": "ignored",
    "cold_first_iter_s": "ignored", "device_util_pct": "ignored", "telemetry_errors": "ignored",
    "memory_estimate_bytes": "exact", "host_bound": "exact", "loadgen_valid_fraction": "exact",
    "server_qps": "search_rate", "int8_top1_agreement": "agreement",
    "int8_max_logit_error": "logit_error", "support_rate_*_pct": "exact",
    "throughput_items_per_s": "rate", "items_per_j": "efficiency", "power_w_mean": "power",
    "latency_*": "latency", "*util_pct*": "utilisation", "*_bytes*": "memory",
    "clock_hz*": "clock", "*": "other"}
# Where the catalogue corrects the version 1 outcome, and why (each fixed in its own commit
# with its own test below).
V1_FIXED: dict[str, str] = {
    "checkpoint_load_s": "judged like checkpoint_save_s, not ignored as a model load time",
    "time_over_memory_bound": "a ratio of times, not memory: not in the memory band",
    "time_over_memory_bound_median": "a ratio of times, not memory: not in the memory band",
    **{name: "a rate (its _per_s is mid-name): the rate band" for name in (
        "tier_max_tokens_per_s_0_500ms", "tier_max_tokens_per_s_500_1000ms",
        "tier_max_tokens_per_s_1000_3000ms", "tier_max_tokens_per_s_3000ms_inf")},
}


def _v1_rule(rules: list[dict[str, Any]], name: str, vendor: str) -> dict[str, Any]:
    for rule in rules:
        if "vendors" in rule and vendor not in rule["vendors"]:
            continue
        patterns = [rule["match"]] if isinstance(rule["match"], str) else rule["match"]
        if any(fnmatch.fnmatchcase(name, p) for p in patterns):
            return rule
    raise AssertionError(name)


def test_band_classes_reproduce_the_version_1_tolerances_but_for_the_named_fixes():
    import yaml

    from testbed.audit.tolerances import load_tolerances

    v1 = yaml.safe_load((FIXTURES / "audit-tolerances-v1.yaml").read_text())["rules"]
    tol = load_tolerances()
    differ = []
    for name in every_name():
        for vendor in ("cuda", "cpu"):
            old, new = _v1_rule(v1, name, vendor), tol.rule_for(name, vendor)
            patterns = [old["match"]] if isinstance(old["match"], str) else old["match"]
            was = (V1_CLASSES[patterns[0]], old.get("rel"), old.get("abs"),
                   bool(old.get("equal")), old.get("ignore"))
            now = (new.band, new.rel, new.abs, new.equal, new.ignore)
            if was != now and name not in V1_FIXED:
                differ.append(f"{name} on {vendor}: was {was}, now {now}")
            if name in V1_FIXED:
                assert was != now, f"{name} is listed as fixed but is as in version 1"
    assert not differ, differ


def test_the_tolerance_file_sizes_classes_and_classifies_nothing():
    import yaml

    text = (ROOT / "testbed" / "audit" / "tolerances.yaml").read_text()
    for word in ("match", "side", "slowdown", "direction", "host_load", "rules", "vendors"):
        assert not re.search(rf"^\s*-?\s*{word}:", text, re.MULTILINE), word

    doc = yaml.safe_load(text)
    assert set(doc["bands"]) == set(BANDS) - {"exact", "ignored"}
    assert doc["ignore"] == {}


def test_the_audit_holds_each_metric_to_its_catalogue_band_and_direction():
    from testbed.audit.tolerances import load_tolerances

    tol = load_tolerances()
    for name in every_name():
        spec = spec_for(name)
        assert spec is not None, name
        rule = tol.rule_for(name, "cuda")
        assert rule is not None and rule.band == spec.band, name
        if spec.band == "ignored":
            assert rule.ignore == catalogue().reasons[spec.ignore], name
    # The clock has no better side, but a loaded host lowers it: the audit takes a clock
    # re-measured above the claim as a busier submission machine, never as a fail.
    clock = spec_for("clock_hz_mean")
    assert (clock.direction, clock.load_side, clock.audit_direction) == ("neither", "lower",
                                                                         "higher")
    assert spec_for("power_w_mean").load_side == "higher"
    assert spec_for("soak_failure_free_s").load_side is None
    assert tol.rule_for("device_util_pct", "cpu").ignore == catalogue().reasons[
        "cpu_utilisation"]


def test_the_runner_aggregates_repeats_as_the_catalogue_says():
    """A grid point's metrics over its repeats: a count's minimum, a peak's maximum, else the
    mean (bench/results.py reads the aggregation from the catalogue)."""
    from bench.results import build_points

    names = {"output_tokens_generated": [5, 3, 4], "framework_mem_peak_bytes": [10, 30, 20],
             "ttft_s": [1.0, 2.0, 3.0]}
    repeats = [{"points": [{"params": {"batch": 1}, "status": "ok", "metrics": {
        n: {"value": v[i], "unit": spec_for(n).unit} for n, v in names.items()}}]}
        for i in range(3)]
    point = build_points(repeats, None, "tokens", 0.0)[0]
    expected = {"min": min, "max": max, "mean": lambda v: sum(v) / len(v)}
    for name, values in names.items():
        assert point["metrics"][name]["value"] == expected[spec_for(name).aggregation](
            values), name
    assert {spec_for(n).aggregation for n in names} == {"min", "max", "mean"}


def test_the_report_takes_titles_directions_units_and_scoring_from_the_catalogue():
    from testbed.report import analysis, checks
    from testbed.report.metrics import (
        PUBLISHED_COMPOSITE,
        ScoreSettings,
        direction,
        info,
    )
    from testbed.report.scores import LLM_TIERS

    cat = catalogue()
    for name in every_name():
        spec = spec_for(name)
        assert direction(name) == spec.better, name
        assert info(name).title == title(name), name
        assert info(name).ratio_scale == spec.ratio_scale, name
        ok, text = checks.expected_unit(name, "images")
        unit = spec.unit.replace("{item}", "images")
        assert ok(unit) and not ok(unit + "x"), (name, text)
    # Units a name's suffix does not give: a share, a count, a ratio, the throughput's item.
    assert checks.expected_unit("pct_of_peak")[0]("%")
    assert checks.expected_unit("iteration_time_cv")[0]("1")
    assert not checks.expected_unit("throughput_items_per_s", "images")[0]("tokens/s")
    assert checks.expected_unit("throughput_items_per_s")[0]("tokens/s")
    assert set(ScoreSettings().weights) == {
        n for n, s in cat.names.items() if s.report and "default" in s.report.composites}
    assert set(PUBLISHED_COMPOSITE) == {"throughput_items_per_s", "items_per_j",
                                        "power_w_mean", "latency_mean_s"}
    telemetry, derived = checks.TELEMETRY_METRICS, checks.DERIVED_FROM
    assert telemetry == cat.with_source("telemetry")
    assert derived == {n: s.derived_from for n, s in cat.names.items() if s.derived_from}
    assert set(checks.ALWAYS_DERIVED) == {"tokens_per_s", "sequences_per_s"}
    assert set(analysis.OUTLIER_METRICS) == {
        n for n, s in cat.names.items() if "device_speed" in s.depends_on}
    # The TTFT tiers' titles are the generation protocol's tiers.
    for name, tier in LLM_TIERS:
        assert title(name) == f"Max throughput, {tier}"
    # Every scenario's headline figure has a better side (the cpu speed-up divides by it).
    from bench.scenarios.measure import HEADLINE

    assert all(spec_for(h) and direction(h) for h in HEADLINE.values()), HEADLINE


def test_the_store_and_the_site_rank_by_the_catalogue_headline():
    from testbed.store import changes, loadtest
    from testbed.store.site import data

    assert data.HEADLINE == changes.DEFAULT_METRIC == catalogue().headline()
    for name in every_name():
        spec = spec_for(name)
        want = spec.better if "device_speed" in spec.depends_on else 0
        assert loadtest.speed_exponent(name) == want, name
    assert loadtest.speed_exponent("throughput_items_per_s") == 1
    assert loadtest.speed_exponent("latency_p50_s") == -1


def _scorecard_reads() -> set[str]:
    """The metric names the scorecard's code reads by name (``value(doc, NAME)``,
    ``metric_ratio(NAME, ...)``)."""
    import ast

    out = set()
    for path in (ROOT / "testbed" / "scorecard").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(
                    node.func, "attr", None)) in ("value", "metric_ratio"):
                out |= {a.value for a in node.args if isinstance(a, ast.Constant)
                        and isinstance(a.value, str)}
    return out


def test_the_scorecard_reads_the_metrics_the_catalogue_says_feed_it():
    from testbed.scorecard.settings import ITEMS, load_settings

    cat = catalogue()
    fed = {n for n, s in cat.names.items() if s.scorecard}
    reads = _scorecard_reads()
    assert reads and reads <= fed, reads - fed
    assert all(set(s.scorecard) <= set(ITEMS) for s in cat.names.values())
    assert all(cat.feeding(item) for item in ITEMS), ITEMS
    weights = load_settings().section("inference_image")["metric_weights"]
    assert set(weights) == set(cat.feeding("inference_image"))
    # What the template's text-generation item reads: the load time and the TTFT tiers.
    from bench.llm.generation import TTFT_TIERS

    assert set(cat.feeding("inference_text")) == {"model_load_s", *(t for t, *_ in TTFT_TIERS)}
    assert spec_for("checkpoint_save_s").better == spec_for("checkpoint_load_s").better == -1


def test_a_peak_allocation_over_the_repeats_is_the_largest():
    """Bug: peak_mem_bytes (the framework's peak allocation at an LLM grid point, and per
    rank in training) was the mean of the repeats' peaks, in the runner and in the audit's
    pooling, while framework_mem_peak_bytes, the same figure of a whole entry, is their
    largest: a mean of peaks is no peak."""
    from bench.results import build_metrics, build_points
    from testbed.audit.compare import pooled_value

    def peak(v: float) -> dict[str, Any]:
        return {"peak_mem_bytes": {"value": v, "unit": "B"}}

    points = [{"points": [{"params": {"batch": 1}, "status": "ok", "metrics": peak(v)}]}
              for v in (1e9, 3e9)]
    got = build_points(points, None, "tokens", 0.0)[0]["metrics"]["peak_mem_bytes"]
    assert got["value"] == 3e9 and got["per_repeat"] == [1e9, 3e9]
    repeats = [{"status": "ok", "window": {"duration_s": 1.0}, "throughput_items_per_s": 10.0,
                "latencies_s": [0.1], "items": 10, "metrics": peak(v)} for v in (2e9, 1e9)]
    entry = build_metrics(repeats, None, "tokens", "cpu", 50.0, None)["peak_mem_bytes"]
    assert entry["value"] == 2e9 and entry["per_repeat"] == [2e9, 1e9]
    assert spec_for("peak_mem_bytes").aggregation == spec_for(
        "framework_mem_peak_bytes").aggregation == "max"
    reruns = [{"value": 2e9, "per_repeat": [2e9, 1e9]}, {"value": 4e9, "per_repeat": [4e9]}]
    assert pooled_value("peak_mem_bytes", reruns, [{}, {}], point=True) == 4e9


def test_the_published_tables_vocabulary_agrees_with_the_catalogue_units():
    """A published table's column becomes a catalogue metric in the unit the catalogue
    declares (testbed/published_headers.yaml names the kind of unit a column is read in)."""
    from testbed.published import METRICS

    kinds = {"time": "s", "power": "W", "bytes": "B", "percent": "%", "temperature": "degC",
             "rate": "{item}/s", "efficiency": "{item}/J", "flop": "FLOP/{item}"}
    checked = 0
    for metric, kind in METRICS.values():
        if kind in kinds:
            assert spec_for(metric) is not None and spec_for(metric).unit == kinds[kind], metric
            checked += 1
    assert checked >= 10
