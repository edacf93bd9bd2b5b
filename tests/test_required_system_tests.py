"""Where the system tests are required (CI sets BENCH_REQUIRE_SYSTEM_TESTS=1), a missing
tool fails them instead of skipping them: a green CI run always includes the browser test.

Checked by running the browser test module in a fresh pytest with ``selenium`` hidden (a
package of that name that cannot be imported comes first on the path).
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def run_browser_tests(tmp_path, required: bool) -> subprocess.CompletedProcess[str]:
    hidden = tmp_path / "hide" / "selenium"
    hidden.mkdir(parents=True, exist_ok=True)
    (hidden / "__init__.py").write_text("raise ModuleNotFoundError('No module named selenium', "
                                       "name='selenium')\n")
    env = {k: v for k, v in os.environ.items() if k != "BENCH_REQUIRE_SYSTEM_TESTS"}
    env["PYTHONPATH"] = f"{tmp_path / 'hide'}{os.pathsep}{ROOT}"
    if required:
        env["BENCH_REQUIRE_SYSTEM_TESTS"] = "1"
    return subprocess.run([sys.executable, "-m", "pytest", "tests/test_report_browser.py",
                           "-q", "-x", "-p", "no:cacheprovider", "-k", "renders_charts"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_a_missing_selenium_fails_the_browser_test_where_it_is_required(tmp_path):
    proc = run_browser_tests(tmp_path, required=True)
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "required system test cannot run: selenium cannot be imported" in proc.stdout
    proc = run_browser_tests(tmp_path, required=False)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "1 skipped" in proc.stdout
