"""What a user types: `invoke bench --native --suite smoke`, then `invoke report`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest

from bench.validate import validate_file
from tests.conftest import ROOT

INVOKE = [sys.executable, "-m", "invoke"]


def invoke(*args, timeout=300):
    return subprocess.run([*INVOKE, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_invoke_list_shows_every_task_with_help():
    proc = invoke("--list")
    assert proc.returncode == 0
    for name in ("bench", "report", "audit", "list", "test", "lint"):
        line = next((ln for ln in proc.stdout.splitlines() if ln.strip().startswith(name + " ")),
                    None)
        assert line and len(line.split()) > 1, f"task {name} has no one-line help"


@pytest.mark.slow
def test_smoke_suite_native_end_to_end(tmp_path):
    out, reports = tmp_path / "run", tmp_path / "report"
    start = time.monotonic()
    store = tmp_path / "store.duckdb"
    proc = invoke("bench", "--native", "--suite", "smoke", "--out", str(out), "--report-out",
                  str(reports), "--store", str(store))
    elapsed = time.monotonic() - start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # A figure, not an assertion: speed is judged by benchmark commands, not unit tests.
    print(f"smoke suite end to end: {elapsed:.1f} s")

    results = sorted(p.name for p in out.glob("*.json"))
    assert results == ["gemm-infer.json", "manifest.json", "resnet-infer.json",
                       "resnet-train.json"]
    for path in out.glob("*.json"):
        assert validate_file(path).ok

    train = json.loads((out / "resnet-train.json").read_text())
    assert train["status"] == "ok"
    assert train["workload"]["info"]["parameters"] == 21_335_972
    assert train["workload"]["info"]["tf32"]["float32_matmul_precision"] == "highest"
    assert train["provenance"]["image"]["native"] is True
    assert all(len(r["series"]["loss"]) > 0 for r in train["repeats"])
    # every model workload records the FLOPs of one item, counted on the meta device at the
    # configured shape (training: forward + backward, 3x the forward), and what they make
    infer = json.loads((out / "resnet-infer.json").read_text())
    fwd, fwd_bwd = (d["metrics"]["flop_per_item"] for d in (infer, train))
    assert fwd["unit"] == "FLOP/images" and fwd["value"] > 0 and "FlopCounterMode" in \
        fwd["method"]
    if train["workload"]["params"] == infer["workload"]["params"]:
        assert fwd_bwd["value"] == pytest.approx(3 * fwd["value"], rel=0.05)
    for doc in (infer, train):
        m = doc["metrics"]
        assert m["flop_per_s"]["value"] == pytest.approx(
            m["throughput_items_per_s"]["value"] * m["flop_per_item"]["value"], rel=0.05)
        # against the cpu's estimated sheet (the report's reference for it), said so
        mfu = m["mfu_pct"]
        if mfu["value"] is None:
            assert mfu["reason"]
        else:
            assert 0 < mfu["value"] < 200 and "host-cpu-estimate" in mfu["definition"]
    gemm = json.loads((out / "gemm-infer.json").read_text())
    assert gemm["metrics"]["flop_per_s"]["value"] > 1e9  # any CPU does a GFLOP/s at n=512
    assert gemm["metrics"]["flop_per_s"]["unit"] == "FLOP/s"
    # progress went to the terminal stream while it ran
    assert "[1/3] resnet-infer" in proc.stdout + proc.stderr

    md = (reports / "report.md").read_text()
    html = (reports / "report.html").read_text()
    for title in ("Throughput", "Device utilisation", "Achieved FLOP/s"):
        assert f"### {title}" in md
        assert f"<h3>{title}</h3>" in html
    assert "resnet-train" in md and "images/s" in md
    # one device: its figures lead, no composite (scores compare devices) but how to compare
    assert "## Figures per workload" in md and "--reference" in md
    assert "### Composite scores" not in md and "data-chart='radar'" not in html
    assert (reports / "aggregated.csv").exists() and (reports / "scores.csv").exists()
    assert f"report: {reports / 'report.html'}" in proc.stdout
    # ... and the run is in the results store
    assert f"store: 1 manifest, 3 results added to {store}" in proc.stdout
    listed = invoke("store", "list", "runs", "--store", str(store))
    run_id = json.loads((out / "manifest.json").read_text())["run_id"]
    assert listed.returncode == 0 and run_id in listed.stdout and "3/3" in listed.stdout


def test_report_lists_invalid_files_and_leaves_them_out(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "broken.json").write_text(json.dumps({"kind": "bench.result", "status": "ok"}))
    proc = invoke("report", "--results", str(results), "--out", str(tmp_path / "rep"))
    assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "0 valid result(s), 1 invalid" in md
    assert "broken.json" in md and "required" in md


def test_report_of_missing_directory_is_a_usage_error(tmp_path):
    proc = invoke("report", "--results", str(tmp_path / "none"))
    assert proc.returncode == 2
    assert "does not exist" in proc.stderr and "invoke bench" in proc.stderr


def test_bench_in_container_without_images_says_what_to_do():
    proc = invoke("bench", "--suite", "smoke")
    assert proc.returncode == 2
    assert "--native" in proc.stderr




def test_combined_reports_are_named_from_their_inputs(tmp_path):
    """Two combined reports wrote into one reports/combined and the second overwrote the
    first: the default directory now comes from the inputs."""
    from testbed.report.build import report_dir_name

    a, b, c = (tmp_path / n for n in ("run-a", "run-b", "run-c"))
    one = report_dir_name([a, b])
    assert one.startswith("combined-run-a+run-b-") and len(one) < 120
    assert report_dir_name([a, b]) == one  # the same inputs: the same directory again
    others = {report_dir_name([a, c]), report_dir_name([a, b, c]),
              report_dir_name([a, b], baseline=[c]), report_dir_name([a, b], references=["x"])}
    assert one not in others and len(others) == 4
    assert report_dir_name([a]) == "run-a"  # one run: its own id, as before
    assert report_dir_name([a], references=["cpu-epyc-2core-smoke"]).startswith("combined-")
    proc = subprocess.run([*INVOKE, "report", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert "reports/combined-<first two>-<hash of all inputs>" in " ".join(proc.stdout.split())


def _wrapped(lines: list[str]) -> dict[str, str]:
    """``invoke --list``'s tasks and their descriptions, wrapped lines joined."""
    out: dict[str, str] = {}
    name = None
    for line in lines:
        if line.startswith("  ") and not line.startswith("   ") and line.split():
            name, _, rest = line.strip().partition(" ")
            out[name] = rest.strip()
        elif name and line.strip():
            out[name] += " " + line.strip()
    return out


def test_invoke_list_descriptions_are_whole_sentences():
    tasks = _wrapped(invoke("--list").stdout.splitlines()[2:])
    assert {"audit", "bench-overhead", "function-catalogue"} <= set(tasks)
    cut = {name: text for name, text in tasks.items() if not text.endswith(".")}
    assert not cut, f"descriptions cut mid-sentence: {cut}"


def test_invoke_bench_help_has_no_guessed_short_flags():
    text = invoke("bench", "--help").stdout
    shorts = set(re.findall(r"^\s+(-[a-zA-Z]|--),? ", text, re.M))
    assert shorts == {"-o", "-s"}, shorts  # -o/--out and -s/--suite, nothing guessed
    assert "--no-store" in text and "--, --no-store" not in text
    flat = " ".join(text.split())
    assert "(default smoke;" in flat and "--set ENTRY.PARAM=VALUE" in flat
    assert "--require-quiet" in flat


def test_the_progress_line_explains_its_figures_once():
    import io

    from bench.progress import Display

    stream = io.StringIO()
    display = Display(stream)
    for done in (1, 2):
        display.progress({"phase": "timed", "done": done, "min_iters": 5, "elapsed_s": 21.1,
                          "min_duration_s": 1})
    text = stream.getvalue()
    assert text.count("seconds elapsed of a timed window of at least") == 1
    assert "timed a/b it, c/d s: a iterations done of at least b" in text


@pytest.mark.slow
def test_a_smoke_entry_beside_three_busy_processes_says_it_was_disturbed(tmp_path):
    """For real, on this machine: three processes spin beside a smoke entry. The entry ends
    with a warning, its result says disturbed with its reasons, the report says so."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)]
    try:
        out, reports = tmp_path / "run", tmp_path / "report"
        proc = invoke("bench", "--native", "--suite", "smoke", "--only", "gemm-infer", "--out",
                      str(out), "--report-out", str(reports), "--store",
                      str(tmp_path / "store.duckdb"))
    finally:
        for p in busy:
            p.kill()
            p.wait()
    said = proc.stdout + proc.stderr
    assert proc.returncode == 0, said  # a warning, not an error (--require-quiet makes one)
    assert "preflight: the machine is busy" in said
    assert "warning: gemm-infer was disturbed while it measured: other processes used" in said
    assert "warning: 1 of 1 entry was disturbed while it measured (gemm-infer)" in said
    doc = json.loads((out / "gemm-infer.json").read_text())
    assert validate_file(out / "gemm-infer.json").ok
    assert doc["disturbed"]["value"] is True
    host = next(r for r in doc["disturbed"]["reasons"] if r["code"] == "host_cpu")
    assert host["unit"] == "CPUs" and host["figure"] > host["threshold"]
    assert all(r["repeats"] for r in [doc]) and all(
        rep["contention"]["other_cpus"] is not None for rep in doc["repeats"])
    md = (reports / "report.md").read_text()
    assert "**1 result(s) were disturbed while they measured ([D])" in md
    assert "## Disturbed measurements" in md and "other processes used" in md
    html = (reports / "report.html").read_text()
    assert "id='disturbed-callout'" in html and "<sup class='mark mark-D'>D</sup>" in html
