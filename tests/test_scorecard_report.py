"""The scorecard section of the report (docs/scorecard.md), from a real CPU run
(tests/fixtures/results/scorecard-cpu: training, a soak with injected faults, collectives)
scored against the template's A100 values, and against a baseline run."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from testbed.report import write_report
from testbed.report.inputs import load_results
from testbed.scorecard.build import build_scorecards
from tests.conftest import FIXTURES
from tests.test_report_browser import browser, full_page_png  # noqa: F401 (fixture)

RUN = FIXTURES / "results" / "scorecard-cpu"


def _lines(card):
    return {(ln.item, ln.sub_item): ln for ln in card.lines}


def test_against_the_template_values_only_what_it_publishes_scores():
    (card,) = build_scorecards(load_results([RUN]))
    assert card.baseline == "NVIDIA A100" and card.baseline_kind == "template"
    lines = _lines(card)
    # 2 of the 4 pretraining models (alpha 0.25 each), 1 of the 2 fine-tuning methods
    assert lines[("training", "function")].score == pytest.approx(0.5)
    assert lines[("finetune", "function")].score == pytest.approx(0.5)
    for key in (("training", "performance"), ("finetune", "performance"),
                ("finetune", "stability"), ("inference_text", "TTFT tiers"),
                ("inference_image", "images/s, latency, load")):
        assert lines[key].score is None and lines[key].shown == "NA", key
    # the CPU's collectives ran at 2 ranks and small sizes: no template point matches
    comm = next(ln for ln in card.lines if ln.item == "communication")
    assert comm.shown == "NA" and "0 of 10" in comm.note
    assert all(r.baseline_source == "template" for r in card.comm) and len(card.comm) == 10
    assert card.comm_measured  # drawn against the template's points
    # the soak: two injected crashes, no baseline soak (its variance term scores 0)
    (soak,) = card.soaks
    assert [c.kind for c in soak.crashes] == ["signal", "oom"]
    stab = lines[("training", "stability")]
    expected = 0.6 / 9 + 0.2 * soak.failure_free_s / soak.window_s
    assert stab.score == pytest.approx(expected)
    assert "scaled to its own window" in stab.note and "var NA" in stab.note
    # item = mean of function, performance (NA = 0) and stability; overall = mean of items
    assert card.item_scores["training"] == pytest.approx((0.5 + 0 + expected) / 3)
    assert card.overall == pytest.approx(
        (card.item_scores["training"] + card.item_scores["finetune"]) / 6)
    assert card.headline == f"Overall, {card.overall * 100:.1f} % of the NVIDIA A100."


def test_a_baseline_run_scores_performance_checkpoint_and_variance():
    run = load_results([RUN])
    (card,) = build_scorecards(run, baseline=load_results([RUN]))
    assert card.baseline_kind == "run"
    lines = _lines(card)
    # the same run as its own baseline: every ratio is 1, the variance 0
    assert lines[("training", "performance")].score == pytest.approx(0.5)  # 2 of 4 W_i
    assert lines[("checkpoint", "save × 0.7, load × 0.3")].score == pytest.approx(1.0)
    (soak,) = card.soaks
    assert soak.variance == 0.0
    assert lines[("training", "stability")].score == pytest.approx(
        0.6 / 9 + 0.2 * soak.failure_free_s / soak.window_s + 0.2)


def test_report_writes_the_section_and_scorecard_csv(tmp_path):
    files = write_report([RUN], tmp_path, scorecard=True)
    rows = list(csv.DictReader(files.scorecard_csv.open()))
    na = [r for r in rows if r["shown"] == "NA"]
    assert na and all(r["score"] == "" and r["counted"] == "0.0" for r in na)
    overall = rows[-1]
    assert overall["test_item"] == "overall" and overall["note"].startswith("Overall, ")
    md = files.markdown.read_text()
    assert "## Scorecard against the A100 baseline" in md
    assert "| Training | performance | NA |" in md
    assert overall["note"] in md and overall["note"] in files.html.read_text()
    for name in ("scorecard-soak", "scorecard-comm", "scorecard-tgs", "scorecard-loss"):
        assert any(p.name.startswith(name) for p in files.charts), name


@pytest.mark.browser
@pytest.mark.slow
def test_scorecard_renders_in_a_browser(browser, tmp_path):  # noqa: F811
    files = write_report([RUN], tmp_path, scorecard=True)
    browser.get(files.html.resolve().as_uri())
    kinds = browser.execute_script("""
        return Array.from(document.querySelectorAll('#scorecard svg.chart')).map(svg => {
          const box = svg.getBoundingClientRect();
          return [svg.dataset.chart, box.width, box.height]; });""")
    assert {k for k, _, _ in kinds} >= {"soak", "comm", "bars", "lines"}
    assert all(w > 300 and h > 150 for _, w, h in kinds), kinds
    cells = browser.execute_script("""
        return Array.from(document.querySelectorAll('#scorecard table.data td'))
          .map(td => td.textContent);""")
    assert cells.count("NA") >= 5
    headline = browser.execute_script(
        "return document.querySelector('#scorecard p.headline').textContent")
    assert "Overall, " in headline and "% of the NVIDIA A100" in headline
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    keep = os.environ.get("REPORT_SCREENSHOT_DIR")
    target = Path(keep) if keep else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    full_page_png(browser, target / "scorecard.png")
    assert (target / "scorecard.png").stat().st_size > 50_000


def test_a_soak_that_failed_scores_zero_and_says_so():
    run = load_results([RUN])
    for r in run.results:
        if r.workload["id"] == "soak-llama3-8b":
            r.doc["status"] = "error"
    (card,) = build_scorecards(run)
    stab = _lines(card)[("training", "stability")]
    assert stab.failed and stab.shown == "0 (failed)" and stab.counted == 0.0


def test_a_smoke_run_fills_no_item_and_says_which_suites_do(tmp_path):
    """A smoke run has nothing the scorecard scores: no "0.0 % of the A100", no "needs a
    baseline run", but which suites fill the items; its GEMM still gives the FP32 peak."""
    from testbed.report.references import resolve

    smoke = load_results([resolve("cpu-epyc-2core-smoke")])
    (card,) = build_scorecards(smoke)
    assert not card.applies
    assert card.headline.startswith("No scorecard item applies to the smoke suite's results, "
                                    "so there is no overall score.")
    for words in ("the train suite (training, fine-tuning, checkpoint)",
                  "the llm suite (text generation, text-to-image)",
                  "the micro suite (communication)"):
        assert words in card.headline
    assert not any("need a baseline run" in n for n in card.notes)
    gemm = next(r for r in smoke.results if r.workload["name"] == "gemm")
    fp32 = next(r for r in card.specs if r.title.startswith("FP32 peak"))
    assert fp32.measured == gemm.doc["metrics"]["flop_per_s"]["value"] and not fp32.note
    files = write_report([resolve("cpu-epyc-2core-smoke")], tmp_path / "rep", scorecard=True)
    rows = list(csv.DictReader(files.scorecard_csv.open(encoding="utf-8")))
    overall = next(r for r in rows if r["test_item"] == "overall")
    assert overall["shown"] == "NA" and overall["score"] == ""
    md = files.markdown.read_text(encoding="utf-8")
    assert "No scorecard item applies" in md and "0.0 % of the NVIDIA A100" not in md
