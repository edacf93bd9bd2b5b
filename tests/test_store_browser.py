"""The leaderboard site in headless Chromium: opened from disk, every page, every link.

The store holds the report's fixture lab and generated runs of several devices over
driver/torch/image versions with audit verdicts (``testbed.store.loadtest``). The test walks
from the index to a workload's leaderboard and a device's history, checks that ranks, scores,
marks and audit badges are there, that every chart is drawn, that every link on every page
resolves to a file of the site and none leaves it, and that no page logged a console error.
Full-page screenshots go to ``$REPORT_SCREENSHOT_DIR`` when it is set.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from testbed.store import open_store
from testbed.store.ingest import add_paths, set_trust
from testbed.store.loadtest import auditor_key, generate
from testbed.store.queries import make_filters
from testbed.store.site import write_site
from tests.conftest import ROOT
from tests.report_fixtures import build_lab
from tests.test_report_browser import browser, full_page_png  # noqa: F401 (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site-lab")
    build_lab(root / "lab")
    key, trust = auditor_key(root)
    generate(45, root / "generated", seed=3, signer=key)
    path = str(root / "store.duckdb")
    with open_store(path, ROOT) as store:
        set_trust(store, trust)
        add_paths(store, [root / "lab", root / "generated"])
    with open_store(path, ROOT, read_only=True) as store:
        written = write_site(store, root / "site", make_filters(),
                             baseline="NVIDIA A100-SXM4-80GB")
    return written


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def links(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")


def shoot(driver, name: str) -> None:
    target = os.environ.get("REPORT_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        full_page_png(driver, Path(target) / name)


def test_leaderboard_site_from_disk(browser, site):  # noqa: F811
    root = site.index.parent
    browser.get(site.index.as_uri())
    assert browser.title == "Accelerator leaderboard"
    workloads = browser.execute_script(
        "return Array.from(document.querySelectorAll('a[href^=\"workloads/\"]'))"
        ".map(a => a.textContent)")
    assert {"resnet-infer", "resnet-train", "gemm-infer"} <= set(workloads)
    shoot(browser, "site-index.png")

    browser.find_element("link text", "resnet-infer").click()
    rows = browser.execute_script("""
        return Array.from(document.querySelectorAll('#leaderboard tbody tr')).map(tr => ({
          rank: tr.cells[0].textContent.trim(), device: tr.cells[1].textContent,
          value: tr.cells[2].textContent, composite: tr.cells[3].textContent,
          baseline: tr.cells[4].textContent, audit: tr.cells[5].textContent,
          docs: tr.querySelectorAll('a[href^="../documents/"]').length}));""")
    ranked = [r for r in rows if r["rank"].isdigit()]
    assert [int(r["rank"]) for r in ranked] == list(range(1, len(ranked) + 1))
    values = [float(re.sub(r"[^0-9.e+]", "", r["value"].split()[0])) for r in ranked]
    assert values == sorted(values, reverse=True)  # ranked by throughput
    assert all(re.fullmatch(r"0\.\d{3}", r["composite"].strip()) for r in ranked)
    assert any(r["baseline"].strip() == "1.000" for r in rows)  # the baseline itself
    assert any("✓ audited by auditor@bench-store" in r["audit"] for r in rows)
    assert all(r["docs"] >= 1 for r in rows)
    # non-comparable results are marked as the report marks them: the MLU's precision
    # fallback on resnet-train (P), its overridden GEMM size (O)
    for workload, mark in (("resnet-train", "P"), ("gemm-infer", "O")):
        page = next((root / "workloads").glob(f"{workload}-*.html")).read_text()
        row = next(r for r in page.split("<tr>") if ">MLU370-X8</a>" in r)
        assert f"mark-{mark}" in row
    shoot(browser, "site-workload.png")

    browser.find_element("partial link text", "NVIDIA A100-SXM4-80GB").click()
    charts = browser.execute_script("""
        return Array.from(document.querySelectorAll('svg.chart')).map(svg => {
          const box = svg.getBoundingClientRect();
          return {kind: svg.dataset.chart, width: box.width, height: box.height,
                  points: svg.querySelectorAll('circle.point, g.point').length,
                  means: svg.querySelectorAll('line.mean').length};
        });""")
    assert charts and all(c["kind"] == "history" for c in charts)
    assert all(c["width"] > 300 and c["height"] > 150 and c["points"] > 0 for c in charts)
    assert max(c["means"] for c in charts) >= 2  # several driver/torch versions drawn
    shoot(browser, "site-device.png")
    assert console_errors(browser) == []

    # every page: every link stays inside the site and points to a file that exists
    pages = sorted(root.rglob("*.html"))
    assert len(pages) >= 3 + 5
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"(href|src)=['\"](https?:|//)", text), page
        browser.get(page.as_uri())
        for href in links(browser):
            url = urlparse(href)
            assert url.scheme == "file", (page, href)
            target = Path(unquote(url.path))
            assert target.exists() and root in target.parents, (page, href)
        assert console_errors(browser) == [], page


def test_site_refuses_a_directory_it_did_not_write(tmp_path, site):
    from bench.errors import UserError

    (tmp_path / "mine.txt").write_text("keep me")
    store_path = site.index.parent.parent / "store.duckdb"
    with open_store(str(store_path), ROOT, read_only=True) as store, \
            pytest.raises(UserError, match="holds no leaderboard site"):
        write_site(store, tmp_path, make_filters())
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    # a site directory is rewritten whole
    again = shutil.copytree(site.index.parent, tmp_path / "again")
    (Path(again) / "workloads" / "stale.html").write_text("old")
    with open_store(str(store_path), ROOT, read_only=True) as store:
        write_site(store, Path(again), make_filters(workload=["gemm-infer"]))
    assert [p.name for p in (Path(again) / "workloads").iterdir()] == [
        next(p.name for p in (site.index.parent / "workloads").iterdir()
             if p.name.startswith("gemm-infer"))]
