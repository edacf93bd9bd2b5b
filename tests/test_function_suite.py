"""Function end to end, on a device with planted faults at the lowest level.

``tests/fake_kernels.py`` replaces a few ATen CPU kernels in the processes the run starts (as
a vendor plugin would be loaded): GELU returns 10 % too much, SiLU raises, hard-swish kills
the process, Mish warns that it fell back to the CPU. One real run (``python -m bench run``)
of the operator-function and model-function workloads and a BERT-tiny benchmark entry with
its own check must classify each planted fault, keep every other result through the crash,
fail BERT-tiny's model function (it uses GELU) and withhold its performance score in the
report, which is then opened in headless Chromium.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import run_bench

FAULTS = "wrong=gelu,raise=silu,crash=hardswish,fallback=mish"
OPS = ["aten.add.Tensor", "aten.gelu.default", "aten.hardswish.default", "aten.mish.default",
       "aten.silu.default", "aten.softmax.int"]
SUITE = f"""
name: function-faults
seed: 0
rules: {{warmup_iters: 0, min_iters: 1, min_duration_s: 0.0, repeats: 1, timeout_s: 600}}
telemetry: {{interval_s: 0.1, idle_s: 0.2}}
entries:
  - workload: operator-function
    mode: infer
    params: {{ops: {json.dumps(OPS)}, variants: [fp32, fp16], case_timeout_s: 120}}
  - workload: model-function
    mode: infer
    params: {{workloads: [bert-tiny], modes: [infer]}}
  - workload: bert-tiny
    mode: infer
    rules: {{function_check: true}}
  - workload: resnet
    mode: infer
    rules: {{function_check: true}}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("function")
    suite = root / "suite.yaml"
    suite.write_text(SUITE, encoding="utf-8")
    out = root / "run"
    proc = run_bench("run", "--suite", str(suite), "--device", "cpu", "--out", str(out),
                     "--quiet", timeout=900,
                     BENCH_WORKLOAD_MODULES="tests.faulty_workloads,tests.fake_kernels",
                     BENCH_FAKE_KERNELS=FAULTS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def _doc(run: Path, entry: str) -> dict:
    return json.loads((run / f"{entry}.json").read_text(encoding="utf-8"))


def test_planted_faults_are_classified_and_a_crash_loses_nothing_else(run):
    doc = _doc(run, "operator-function-infer")
    assert doc["status"] == "ok"
    fn = doc["function"]
    matrix = fn["matrix"]
    for dtype in ("fp32", "fp16"):
        assert matrix["aten.gelu.default"][dtype] == "wrong"
        assert matrix["aten.silu.default"][dtype] == "unsupported"
        assert matrix["aten.hardswish.default"][dtype] == "crash"
        assert matrix["aten.mish.default"][dtype] == "cpu_fallback"
        # operators after the crashing one (alphabetically) ran in a new worker, and passed
        assert matrix["aten.softmax.int"][dtype] == "pass"
        assert matrix["aten.add.Tensor"][dtype] == "pass"
    cases = {(c["op"], c["variant"], c["pass"]): c for c in fn["cases"]}
    wrong = cases[("aten.gelu.default", "fp32", "forward")]
    # 10 % too much: the largest relative error is 0.1, far over the fp32 tolerance
    assert wrong["max_rel_err"] == pytest.approx(0.1, rel=1e-3)
    assert wrong["err_over_tol"] > 100
    assert "NotImplementedError" in cases[("aten.silu.default", "fp32", "forward")]["message"]
    crash = cases[("aten.hardswish.default", "fp32", "forward")]
    assert "SIGSEGV" in crash["message"]
    assert cases[("aten.mish.default", "fp32", "forward")]["fallback"]
    assert fn["crashes"] == 2 and fn["workers"] == 3  # one crash per dtype, each restarted
    assert fn["support"]["fp32"]["operators"] == len(OPS)
    assert fn["support"]["fp32"]["rate_pct"] == pytest.approx(100 * 2 / len(OPS))
    assert doc["metrics"]["support_rate_fp16_pct"]["value"] == pytest.approx(100 * 2 / len(OPS))


def test_a_wrong_model_fails_its_function_check_on_its_own_result(run):
    models = _doc(run, "model-function-infer")["function"]
    (check,) = models["checks"]
    assert check["workload"] == "bert-tiny" and check["status"] == "fail"
    assert check["outputs"]["start_logits"]["norm_rel_err"] > check["tolerance"]["norm_rel"]
    perf = _doc(run, "bert-tiny-infer")
    assert perf["status"] == "ok" and perf["metrics"]["throughput_items_per_s"]["value"] > 0
    assert perf["function"]["status"] == "fail"
    assert "norm-wise error" in perf["function"]["reason"]
    # ResNet computes no GELU: right
    assert _doc(run, "resnet-infer")["function"]["status"] == "pass"


def test_the_results_are_valid_documents(run):
    proc = run_bench("validate", str(run))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_report_withholds_the_wrong_models_score_and_shows_the_matrix(run, tmp_path):
    from testbed.report import write_report

    files = write_report([run], tmp_path / "report")
    analysis = files.analysis
    device = next(iter(analysis.devices))
    assert "F" in analysis.status.loc[(device, "bert-tiny-infer"), "marks"]
    assert "F" not in analysis.status.loc[(device, "resnet-infer"), "marks"]
    assert "bert-tiny-infer" not in analysis.composites
    assert "resnet-infer" in analysis.composites
    assert "operator-function-infer" not in analysis.composites  # function is never scored
    html = files.html.read_text(encoding="utf-8")
    assert "id='function'" in html and "Operator support rate per dtype" in html
    assert html.count("class='op-cell op-wrong'") >= 2
    assert "Model function" in html and "FAIL" in html
    md = files.markdown.read_text(encoding="utf-8")
    assert "## Function before performance" in md


@pytest.fixture(scope="module")
def webdriver():
    """Selenium and the browser, checked before the run the test needs is made: a missing
    one skips, or fails where the system tests are required (never importorskip)."""
    import shutil

    from tests.conftest import require_module, skip_or_fail
    from tests.test_report_browser import CHROMEDRIVER, CHROMIUM

    module = require_module("selenium.webdriver",
                            "`bash scripts/setup.sh --dev` installs selenium")
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        skip_or_fail("chromium/chromedriver not installed (scripts/system-deps.sh installs them)")
    return module


@pytest.mark.browser
def test_the_function_section_in_a_real_browser(webdriver, run, tmp_path):
    from selenium.webdriver.chrome.service import Service

    from testbed.report import write_report
    from tests.test_report_browser import CHROMEDRIVER, CHROMIUM, OFFLINE_FLAGS, full_page_png

    files = write_report([run], tmp_path / "report")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*OFFLINE_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(files.html.resolve().as_uri())
        found = driver.execute_script("""
            const m = document.querySelector('#function-problems svg');
            const box = m ? m.getBoundingClientRect() : {width: 0, height: 0};
            return {cells: document.querySelectorAll('#function-problems rect.op-cell').length,
                    width: box.width, height: box.height,
                    support: document.querySelectorAll('#function-support tbody tr').length,
                    models: document.querySelectorAll('#function-models tbody tr').length,
                    fail: Array.from(document.querySelectorAll('#function-models td'))
                      .filter(td => td.textContent.startsWith('FAIL')).length};""")
        keep = os.environ.get("REPORT_SCREENSHOT_DIR")
        target = Path(keep) if keep else tmp_path
        target.mkdir(parents=True, exist_ok=True)
        full_page_png(driver, target / "function-report.png")
        # 4 faulty operators x 2 dtypes in the problems matrix
        assert found["cells"] == 8 and found["width"] > 300 and found["height"] > 60, found
        assert found["support"] == 2 and found["models"] >= 2 and found["fail"] >= 1, found
        assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
    finally:
        driver.quit()
