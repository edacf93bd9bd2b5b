"""Every shipped suite loads for every vendor, and `all` is exactly its parts."""

from __future__ import annotations

import pytest

from bench.config import available_suites, load_suite
from bench.devices import BACKENDS
from bench.errors import UserError


@pytest.mark.parametrize("name", available_suites())
def test_every_suite_loads_for_every_vendor(name):
    for vendor in (None, *BACKENDS):
        suite = load_suite(name, vendor=vendor)
        assert suite.entries
        assert len({e.id for e in suite.entries}) == len(suite.entries)


@pytest.mark.parametrize(("whole", "parts"), [
    ("all", ["function", "cv", "nlp", "llm", "train", "micro", "scenarios"]),
    ("all-full", ["function-full", "cv-full", "nlp-full", "llm-full", "train-full", "micro-full",
                  "scenarios-full"]),
])
def test_all_is_the_union_of_its_parts_under_their_own_rules(whole, parts):
    combined = load_suite(whole)
    expected = [e for part in parts for e in load_suite(part).entries]
    assert [e.id for e in combined.entries] == [e.id for e in expected]
    assert [e.rules for e in combined.entries] == [e.rules for e in expected]
    assert [e.params for e in combined.entries] == [e.params for e in expected]
    assert [e.scenario_rules for e in combined.entries] == [e.scenario_rules for e in expected]


def test_full_suites_use_full_configs_and_small_suites_small():
    for name in ("cv", "nlp", "llm", "train", "micro", "smoke", "scenarios", "function"):
        assert {e.config for e in load_suite(name).entries} == {"small"}, name
    for name in ("cv-full", "nlp-full", "llm-full", "train-full", "micro-full", "scenarios-full",
                 "function-full"):
        assert {e.config for e in load_suite(name).entries} == {"full"}, name


def test_overrides_reach_included_entries():
    suite = load_suite("all", overrides=["resnet-infer.batch_size=3"])
    entry = next(e for e in suite.entries if e.id == "resnet-infer")
    assert entry.params["batch_size"] == 3 and entry.overrides == {"batch_size": 3}


def test_include_errors_name_the_file_and_field(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(f"name: a\ninclude: [{b}]\n")
    b.write_text(f"name: b\ninclude: [{a}]\n")
    with pytest.raises(UserError, match=r"at \$\.include\[0\]: including .* makes a cycle"):
        load_suite(str(a))
    c = tmp_path / "c.yaml"
    c.write_text("name: c\ninclude: [nosuch]\n")
    with pytest.raises(UserError, match=r"c\.yaml at \$\.include\[0\]: Unknown suite 'nosuch'"):
        load_suite(str(c))
    d = tmp_path / "d.yaml"
    d.write_text("name: d\ninclude: [smoke, smoke]\n")
    with pytest.raises(UserError, match="appears twice"):
        load_suite(str(d))


def test_an_including_suite_samples_as_finely_as_its_finest_part():
    intervals = {n: load_suite(n).telemetry.interval_s for n in ("cv", "nlp", "llm", "micro")}
    assert load_suite("all").telemetry.interval_s == min(intervals.values())


def test_the_outline_that_list_reads_counts_what_the_loader_resolves():
    """`list` counts entries without importing a workload (sweeps expanded, includes
    followed); the full loader must agree for every bundled suite."""
    from bench.config import suite_outline

    for name in available_suites():
        suite = load_suite(name)
        assert suite_outline(name) == (suite.description, len(suite.entries)), name
