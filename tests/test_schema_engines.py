"""The compiled validator (jsonschema-rs) and the reference (jsonschema) judge alike.

``bench.schema`` lets the compiled engine accept and the reference explain a refusal, so a
document the compiled one accepted and the reference would refuse would pass unseen. Both run
here over every document the repository holds (results, manifests, suites, vendor and device
specs, tolerances, the model facts, published rows) and every hostile document of the
hostile-input tests: the files of ``make_hostile_run`` that parse, and the inputs the fuzz
strategies of ``tests/fuzz_inputs.py`` generate for each reader.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings

from bench.jsonio import UnreadableDocument, check_tree, parse_json_document, read_document_bytes
from bench.schema import fast_validator, fast_verdict, reference_errors, validation_errors
from bench.validate import schema_for, validate_bytes
from tests.conftest import ROOT, require_module
from tests.fuzz_inputs import TARGETS
from tests.test_hostile_inputs import make_hostile_run

require_module("jsonschema_rs", "it is a dependency of the project: pip install -e .",
               module_level=True)

# Repository files and the schema each is checked against (documents with a "kind", and run
# manifests, take theirs from bench.validate.schema_for).
OWN_SCHEMA = {
    "bench/suites/*.yaml": "suite", "tests/fixtures/suites/*.yaml": "suite",
    "tests/fixtures/audit-*suite.yaml": "suite", "results/reference/h100/probe-suite.yaml": "suite",
    "images/*/vendor.yaml": "vendor", "bench/specs/devices/*.json": "device-spec",
    "bench/specs/model_facts.json": "model-facts", "bench/specs/scorecard.yaml": "scorecard",
    "testbed/audit/tolerances.yaml": "tolerances",
    "tests/fixtures/audit-tolerances-ci.yaml": "tolerances", "bench/metrics.yaml": "metrics",
}
RUN_DIRS = ("tests/fixtures/results/*/*.json", "testbed/report/references/*/*.json",
            "results/reference/h100/*/*.json")


def verdicts(doc: Any, schema: str) -> tuple[bool | None, bool]:
    return fast_verdict(doc, schema), not reference_errors(doc, schema)


def disagreements(docs: list[tuple[str, Any, str]]) -> tuple[list[str], int]:
    """Where the engines' verdicts differ, and how many documents both judged."""
    out, judged = [], 0
    for where, doc, schema in docs:
        fast, ref = verdicts(doc, schema)
        if fast is None:  # a value the compiled engine cannot take: the reference decides
            continue
        judged += 1
        if fast != ref:
            out.append(f"{where} ({schema}): jsonschema-rs {'accepts' if fast else 'refuses'}, "
                       f"jsonschema {'accepts' if ref else 'refuses'}")
    return out, judged


def repository_documents() -> list[tuple[str, Any, str]]:
    docs = []
    for pattern, schema in OWN_SCHEMA.items():
        for path in sorted(ROOT.glob(pattern)):
            text = path.read_text(encoding="utf-8")
            doc = yaml.safe_load(text) if path.suffix == ".yaml" else json.loads(text)
            docs.append((str(path.relative_to(ROOT)), doc, schema))
    for pattern in RUN_DIRS:
        for path in sorted(ROOT.glob(pattern)):
            doc = json.loads(path.read_text(encoding="utf-8"))
            docs.append((str(path.relative_to(ROOT)), doc, schema_for(doc, path)))
    from testbed.published import build_documents

    cite = {"title": "t", "url": "https://example.com/x", "table": "T", "publisher": "p",
            "role": "vendor"}
    for table in ("docs/examples/vendor-inference.csv", "docs/examples/evaluation.yaml"):
        for i, doc in enumerate(build_documents(ROOT / table, cite, {"assume": ["config=full"]})):
            docs.append((f"{table} row {i}", doc, "published"))
    return docs


def test_every_repository_document_is_judged_alike():
    docs = repository_documents()
    assert len(docs) > 90
    wrong, judged = disagreements(docs)
    assert wrong == []
    assert judged == len(docs)
    # and each against the result schema, which most of them are not: refusals agree too
    wrong, _ = disagreements([(w, d, "result") for w, d, _s in docs])
    assert wrong == []


def test_every_hostile_file_that_parses_is_judged_alike(tmp_path):
    run = make_hostile_run(tmp_path)
    docs = []
    for path in sorted(run.iterdir()):
        try:
            doc = parse_json_document(read_document_bytes(path, run))
        except UnreadableDocument:
            continue
        docs.append((path.name, doc, schema_for(doc, path)))
    assert {"long.json", "gemm-infer.json"} <= {d[0] for d in docs}
    wrong, judged = disagreements(docs)
    assert wrong == [] and judged == len(docs)


def _draw(strategy: Any, count: int) -> list[Any]:
    """``count`` inputs of a fuzz strategy, the same ones every run."""
    drawn: list[Any] = []

    @settings(max_examples=count, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value: Any) -> None:
        drawn.append(value)

    collect()
    return drawn


def _parsed(data: bytes, name: str, suite: bool) -> tuple[Any, str] | None:
    try:
        if suite:
            doc = yaml.safe_load(data.decode("utf-8"))
            check_tree(doc)
            return doc, "suite"
        doc = parse_json_document(data)
    except (UnreadableDocument, UnicodeDecodeError, yaml.YAMLError, ValueError,
            RecursionError):
        return None
    return doc, schema_for(doc, Path(name))


# The importer's inputs are tables (CSV, YAML rows), not documents: the documents it builds
# from them are validated by the importer, and `invoke fuzz` checks both engines agree there.
DOCUMENT_TARGETS = [t for t in TARGETS if t != "import"]


@pytest.mark.parametrize("target", DOCUMENT_TARGETS)
def test_every_fuzz_input_is_judged_alike(target):
    docs = []
    for value in _draw(TARGETS[target].inputs(), 80):
        data, name = value if isinstance(value, tuple) else (value, "gemm-infer.json")
        parsed = _parsed(data, name, target == "suite")
        if parsed is not None:
            docs.append((f"{target} input {len(docs)}", *parsed))
    assert len(docs) > 30, "the strategy gave too few documents to compare"
    wrong, judged = disagreements(docs)
    assert wrong == []
    assert judged > 0.9 * len(docs)
    valid = sum(1 for _w, d, s in docs if not reference_errors(d, s))
    # the repository's documents are valid; these are mostly refused (the report's, edited
    # to keep their types and re-sealed, mostly pass): agreement on both answers is tested
    if target == "report":
        assert valid > 0, (valid, len(docs))
    else:
        assert valid < len(docs), (valid, len(docs))


def test_a_refused_document_gets_the_reference_message_with_path_and_rule():
    base = json.loads((ROOT / "tests/fixtures/results/smoke-cpu-1thread/gemm-infer.json")
                      .read_text(encoding="utf-8"))
    base["metrics"]["throughput_items_per_s"]["value"] = "fast"
    base["run_id"] = "run-1\n"  # ECMA-262's $: no newline at the end of an id, in both
    assert fast_validator("result") is not None
    assert verdicts(base, "result") == (False, False)
    report = validate_bytes(json.dumps(base).encode(), Path("/runs/x/gemm-infer.json"))
    assert report.problems == reference_errors(base, "result")
    paths = {p.path: p.rule for p in report.problems}
    assert paths["$.run_id"] == "pattern"
    assert any(p.startswith("$.metrics.throughput_items_per_s") for p in paths)
    assert validation_errors(base, "result") == report.problems


def test_without_the_compiled_engine_the_reference_decides(monkeypatch):
    from bench import schema

    monkeypatch.setenv(schema.ENGINE_ENV, "jsonschema")
    schema.fast_validator.cache_clear()
    try:
        assert schema.fast_validator("result") is None and schema.engine() == "jsonschema"
        doc = json.loads((ROOT / "tests/fixtures/results/smoke-cpu-1thread/manifest.json")
                         .read_text(encoding="utf-8"))
        assert validation_errors(doc, "manifest") == []
        doc["state"] = "nearly"
        assert [p.path for p in validation_errors(doc, "manifest")] == ["$.state"]
    finally:
        schema.fast_validator.cache_clear()
