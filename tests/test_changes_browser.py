"""The site's "what changed" pages in headless Chromium, and the leaderboard's change badge.

The store is tests/changes_fixtures.py's (a 20 % drop at a driver change on the A100's ResNet
inference, an unexplained 10 % drop on the MLU's GEMM). Every device page links to its changes
page; the changes page lists the change with its cause and draws every series; the ResNet
leaderboard carries "-20 % since driver 550.54.15" on the configuration measured since.
Full-page screenshots go to ``$REPORT_SCREENSHOT_DIR`` when it is set.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from testbed.store import open_store
from testbed.store.queries import make_filters
from testbed.store.site import write_site
from tests.changes_fixtures import build
from tests.conftest import ROOT
from tests.test_report_browser import browser, full_page_png  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("changes-site")
    planted = build(root)
    with open_store(planted.store, ROOT, read_only=True) as store:
        return write_site(store, root / "site", make_filters())


def shoot(driver, name: str) -> None:
    target = os.environ.get("REPORT_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        full_page_png(driver, Path(target) / name)


def errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_changes_pages_from_each_device_page(browser, site):  # noqa: F811
    root = site.index.parent
    assert site.changes == 2
    devices = sorted((root / "devices").glob("*.html"))
    assert len(devices) == 2
    seen = {}
    for page in devices:
        browser.get(page.as_uri())
        link = browser.find_element("link text", "What changed")
        link.click()
        assert urlparse(browser.current_url).path.startswith(str(root / "changes"))
        rows = browser.execute_script("""
            return Array.from(document.querySelectorAll('#changes tbody tr')).map(tr => ({
              workload: tr.cells[1].textContent, kind: tr.cells[3].textContent,
              change: tr.cells[4].textContent, cause: tr.cells[5].textContent,
              docs: tr.querySelectorAll('a[href^="../documents/"]').length}));""")
        charts = browser.execute_script("""
            return Array.from(document.querySelectorAll('svg.chart-changes')).map(svg => {
              const box = svg.getBoundingClientRect();
              return {width: box.width, height: box.height,
                      points: svg.querySelectorAll('circle.point').length,
                      out: svg.querySelectorAll('.kept-out').length,
                      changes: svg.querySelectorAll('line.change').length,
                      versions: Array.from(svg.querySelectorAll('line.version'))
                                .map(l => l.textContent),
                      levels: svg.querySelectorAll('line.level').length};
            });""")
        assert len(charts) == 3  # one per workload of the device
        assert all(c["width"] > 500 and c["height"] > 150 and c["points"] > 5 for c in charts)
        assert sum(c["changes"] for c in charts) == len(rows) == 1
        assert max(c["levels"] for c in charts) == 2
        assert sum(c["out"] for c in charts) > 0  # kept-out runs drawn apart
        (row,) = rows
        assert row["kind"] == "regression" and row["docs"] >= 2
        seen[row["workload"]] = row
        if row["workload"] == "resnet-infer":  # the A100: its torch change moved nothing
            versions = [v for c in charts for v in c["versions"]]
            torch = [v for v in versions if v.startswith("torch 2.3.1+cu121 -> 2.4.1+cu124")]
            driver = [v for v in versions if v == "driver 535.104.05 -> 550.54.15"]
            assert len(torch) == 3 and len(driver) == 2  # the driver moved one of three
            assert len(versions) == 5
        title = browser.title
        shoot(browser, f"changes-{'a100' if 'A100' in title else 'mlu'}.png")
        assert errors(browser) == []
        for href in browser.execute_script(
                "return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"):
            target = Path(unquote(urlparse(href).path))
            assert target.exists() and root in target.parents, href
    assert seen["resnet-infer"]["cause"] == "driver 535.104.05 -> 550.54.15"
    assert -22 < float(seen["resnet-infer"]["change"].split()[0]) < -18  # -20 % planted
    assert seen["gemm-infer"]["cause"].startswith("unexplained: the machine or its load")
    assert "disturbed" in seen["gemm-infer"]["cause"]  # both runs' records (or their absence)


def test_leaderboard_badge_since_the_driver(browser, site):  # noqa: F811
    root = site.index.parent
    page = next((root / "workloads").glob("resnet-infer-*.html"))
    browser.get(page.as_uri())
    badges = browser.execute_script("""
        return Array.from(document.querySelectorAll('#leaderboard tbody tr')).map(tr => ({
          device: tr.cells[1].textContent,
          badge: (tr.querySelector('a.change-badge') || {}).textContent || '',
          href: (tr.querySelector('a.change-badge') || {}).href || ''}));""")
    # the configurations measured since the driver change (a later torch build, which moved
    # nothing, included); not the one before it
    marked = [b for b in badges if b["badge"]]
    assert len(marked) == 2 and len(badges) == 4, badges
    for b in marked:
        assert re.fullmatch(r"-(19|20|21) % since driver 550\.54\.15", b["badge"]), b
        assert "535.104.05" not in b["device"]
    assert any("535.104.05" in b["device"] for b in badges if not b["badge"])
    browser.get(marked[0]["href"])
    assert browser.find_element("css selector", "#changes tbody tr").is_displayed()
    assert errors(browser) == []
    browser.get(page.as_uri())
    shoot(browser, "changes-badge.png")
