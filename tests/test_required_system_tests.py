"""Where the system tests are required (CI sets BENCH_REQUIRE_SYSTEM_TESTS=1), a missing
tool fails them instead of skipping them: a green CI run always includes the browser, LoadGen
and root-only tests.

Checked by running each test module in a fresh pytest with the tool taken away at the lowest
level: a package of that name that cannot be imported comes first on the path (selenium,
LoadGen), or ``os.geteuid`` answers an ordinary user's id (the tests that need root).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

HIDE = "raise ModuleNotFoundError('No module named {0}', name='{0}')\n"
NOT_ROOT = "import os\nos.geteuid = lambda: 1000\n"


def run_tests(tmp_path, required: bool, args: list[str], hide: str | None = None,
              not_root: bool = False) -> subprocess.CompletedProcess[str]:
    """``pytest ARGS`` in a fresh interpreter with ``hide`` unimportable, or as if not root."""
    plugins = tmp_path / "hide"
    plugins.mkdir(parents=True, exist_ok=True)
    extra = []
    if hide:
        package = plugins / hide
        package.mkdir(exist_ok=True)
        (package / "__init__.py").write_text(HIDE.format(hide))
    if not_root:
        (plugins / "not_root.py").write_text(NOT_ROOT)
        extra = ["-p", "not_root"]
    env = {k: v for k, v in os.environ.items() if k != "BENCH_REQUIRE_SYSTEM_TESTS"}
    env["PYTHONPATH"] = f"{plugins}{os.pathsep}{ROOT}"
    if required:
        env["BENCH_REQUIRE_SYSTEM_TESTS"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", *args, "-q", "-x",
                           "-p", "no:cacheprovider", *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def run_browser_tests(tmp_path, required: bool) -> subprocess.CompletedProcess[str]:
    return run_tests(tmp_path, required, ["tests/test_report_browser.py", "-k",
                                          "renders_charts"], hide="selenium")


def test_a_missing_selenium_fails_the_browser_test_where_it_is_required(tmp_path):
    proc = run_browser_tests(tmp_path, required=True)
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "required system test cannot run: selenium cannot be imported" in proc.stdout
    proc = run_browser_tests(tmp_path, required=False)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "1 skipped" in proc.stdout


@pytest.mark.parametrize(("args", "hide", "not_root", "says"), [
    # LoadGen missing: the whole scenario module (it was importorskip: skipped in CI too).
    (["tests/test_scenarios.py", "-k", "by_hand"], "mlperf_loadgen", False,
     "mlperf_loadgen cannot be imported"),
    # selenium missing: the function report in a browser (checked before its run is made).
    (["tests/test_function_suite.py", "-k", "real_browser"], "selenium", False,
     "selenium.webdriver cannot be imported"),
    # Not root: mounting a tmpfs and chown (they were plain skips).
    (["tests/test_hostile_runs.py", "-k", "never_chowned or disk_already_full"], None, True,
     "needs root"),
])
def test_every_system_test_follows_the_skip_or_fail_rule(tmp_path, args, hide, not_root,
                                                         says):
    proc = run_tests(tmp_path, True, args, hide, not_root)
    assert proc.returncode not in (0, 5), proc.stdout[-2000:]
    assert "required system test cannot run: " in proc.stdout and says in proc.stdout, \
        proc.stdout[-2000:]
    proc = run_tests(tmp_path, False, args, hide, not_root)
    # 5: a module skipped as a whole collects no test
    assert proc.returncode in (0, 5), proc.stdout[-2000:]
    assert "skipped" in proc.stdout and "passed" not in proc.stdout, proc.stdout[-2000:]
