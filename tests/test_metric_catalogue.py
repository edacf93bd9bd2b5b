"""The metric catalogue (bench/metrics.yaml): every metric a bundled suite or a fixture writes
is declared, and the documents follow what is declared (the aggregation over repeats, the
unit). The audit takes direction and aggregation from here (test_audit_stats.py).

The names come from every result document under tests/fixtures, results/reference and the
report's bundled references (testbed/report/references) and
from a run of the smoke suite at minimal rules here. The other small suites' workloads are run
by their own tests (function, scenarios, LLM, training, soak, YOLO, ...) through
``tests.conftest.run_bench``, which checks every run it makes the same way
(``undeclared_metrics``), so no test pays for a second run of them. (A run of the whole `all`
suite at minimal rules took 20 minutes on the project's loaded 2-core machine.)"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from bench.errors import UserError
from bench.metrics import AGGREGATIONS, DIRECTIONS, catalogue, load_catalogue, spec_for
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
        assert spec.description and spec.unit
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
    assert spec_for("latency_p99.9_s").family is not None
    assert spec_for("ttft_p90_s").direction == "lower"
    assert spec_for("no_such_metric") is None


@pytest.mark.parametrize(("text", "where"), [
    ("version: 1\nmetrics: [{name: x, unit: s, direction: up, aggregation: mean, "
     "description: d}]\n", "$.metrics[0].direction"),
    ("version: 1\nmetrics: [{name: x, unit: s, direction: higher, aggregation: median, "
     "description: d}]\n", "$.metrics[0].aggregation"),
    ("version: 1\nmetrics: [{pattern: 'x_.*', unit: s, direction: higher, aggregation: mean, "
     "description: d}]\n", "$.metrics[0]"),
    ("version: 1\nmetrics: [{name: x, unit: s, direction: higher, aggregation: mean}]\n",
     "$.metrics[0]"),
    ("version: 1\nmetrics:\n  - {name: x, unit: s, direction: higher, aggregation: mean, "
     "description: d}\n  - {name: x, unit: s, direction: lower, aggregation: mean, "
     "description: d}\n", "declares 'x' twice"),
    ("version: 1\nmetrics: [{pattern: 'x_(', family: f, unit: s, direction: higher, "
     "aggregation: mean, description: d}]\n", "not a regular expression"),
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
