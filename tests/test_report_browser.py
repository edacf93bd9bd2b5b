"""The HTML report in a real browser: headless Debian chromium driven by selenium.

Chromium is started with the flags that keep it from reaching for the network (this machine
and many labs are offline; without them it hangs) and a fresh profile. The test renders the
report of the fixture lab (two real CPU runs plus fixture accelerators), checks that every
chart and table is there and drawn at a real size, that the page logged no console error,
and saves a full-page screenshot (``$REPORT_SCREENSHOT_DIR`` keeps it; CI can upload it).
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import pytest

from testbed.report import write_report
from tests.conftest import skip_or_fail
from tests.report_fixtures import build_lab

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
OFFLINE_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage")

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        skip_or_fail("chromium/chromedriver not installed (scripts/system-deps.sh installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*OFFLINE_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('profile')}",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    dirs = build_lab(root)
    return write_report([dirs[k] for k in ("cpu1", "cpu2", "a100", "mlu", "extra")],
                        root / "report", baseline=[dirs["a100"]])


def full_page_png(driver, path: Path) -> None:
    height = driver.execute_script("return document.documentElement.scrollHeight")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": 1400, "height": height, "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))


def test_report_renders_charts_and_tables_without_console_errors(browser, report, tmp_path):
    browser.get(report.html.resolve().as_uri())
    assert browser.title == "Accelerator benchmark report"
    charts = browser.execute_script("""
        return Array.from(document.querySelectorAll('svg.chart')).map(svg => {
          const box = svg.getBoundingClientRect();
          return {kind: svg.dataset.chart, width: box.width, height: box.height,
                  marks: svg.querySelectorAll(
                    'rect.bar, polygon.radar-area, polyline.trace, circle.roof-point').length};
        });""")
    kinds = [c["kind"] for c in charts]
    assert kinds.count("radar") == 1 and kinds.count("roofline") == 1
    assert kinds.count("timeline") == 5 and kinds.count("bars") >= 8
    for chart in charts:
        assert chart["width"] > 300 and chart["height"] > 150, chart
        assert chart["marks"] > 0, chart
    roof_points = browser.execute_script(
        "return document.querySelectorAll('svg.chart-roofline circle.roof-point').length")
    assert roof_points == 51  # 3 sweeps x 18 points, 3 oom points not drawn
    tables = browser.execute_script("""
        const out = {};
        document.querySelectorAll('table.data[id]').forEach(t => {
          out[t.id] = t.tBodies[0].rows.length; });
        return out;""")
    for anchor in ("devices", "checks", "findings", "composite", "baseline", "tiers",
                   "metric-throughput_items_per_s", "metric-power_w_mean"):
        assert tables.get(anchor, 0) > 0, (anchor, tables)
    # the implausible 1.68 MW reading is marked where it appears, with the reason on hover
    flagged = browser.execute_script("""
        return Array.from(document.querySelectorAll('#metric-power_w_mean td.flagged'))
          .map(td => [td.textContent, td.title]);""")
    assert len(flagged) == 1 and flagged[0][0].startswith("1.68 MW")
    assert "power_limit" in flagged[0][1]
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    keep = os.environ.get("REPORT_SCREENSHOT_DIR")
    target = Path(keep) if keep else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    png = target / "report.png"
    full_page_png(browser, png)
    assert png.stat().st_size > 50_000 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_of_the_two_real_runs_renders(browser, tmp_path):
    from tests.report_fixtures import ONE_THREAD, TWO_THREADS

    files = write_report([ONE_THREAD, TWO_THREADS], tmp_path)
    browser.get(files.html.resolve().as_uri())
    kinds = browser.execute_script(
        "return Array.from(document.querySelectorAll('svg.chart')).map(s => s.dataset.chart)")
    assert kinds.count("radar") == 1 and kinds.count("timeline") == 3 and "roofline" not in kinds
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_published_table_with_planted_errors_draws_broken_bars_and_fits_the_page(browser,
                                                                                 tmp_path):
    """A published table beside the lab: the flagged values are drawn broken (not as full
    bars, their value printed), the tables fit a 1400 px window, and a screenshot is kept."""
    from tests.test_published import MLU, clean_rows, imported, planted_rows, row

    dirs = build_lab(tmp_path / "lab")
    rows = clean_rows()[:3]
    rows[2] = row(MLU, "resnet-infer", 4000, 150, 50)  # far beyond the spec sheets: !
    files = write_report([dirs["a100"], dirs["mlu"], imported(tmp_path, "planted",
                                                              planted_rows()),
                          imported(tmp_path, "outlier", rows, table="Table 5")],
                         tmp_path / "report")
    browser.get(files.html.resolve().as_uri())
    width = browser.execute_script("return document.documentElement.clientWidth")
    assert width <= 1400
    assert browser.execute_script("return document.documentElement.scrollWidth") <= width
    devices = browser.execute_script(
        "const t = document.getElementById('devices'); return [t.scrollWidth, "
        "t.parentElement.clientWidth]")
    assert devices[0] <= devices[1], devices  # no sideways scrolling of the devices table
    broken = browser.execute_script("""
        return Array.from(document.querySelectorAll(
            '#bars-throughput_items_per_s rect.bar-clipped'))
          .map(r => [r.getBoundingClientRect().height,
                     r.querySelector('title').textContent]);""")
    texts = browser.execute_script("""
        return Array.from(document.querySelectorAll(
          '#bars-throughput_items_per_s text.bar-value')).map(t => t.textContent);""")
    assert len(broken) >= 2 and any("9.000e+08 images/s" in t for t in texts), (broken, texts)
    breaks = browser.execute_script(
        "return document.querySelectorAll('#bars-throughput_items_per_s path.break').length")
    assert breaks == 2 * len(broken)
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    keep = os.environ.get("REPORT_SCREENSHOT_DIR")
    target = Path(keep) if keep else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    full_page_png(browser, target / "report-published.png")


def test_the_first_report_of_one_device_leads_with_its_figures(browser, tmp_path):
    """The Quick start's report: one device, so no scores; its figures, % of peak, cold
    start, roofline and telemetry drawn at a real size (the bundled reference set)."""
    from testbed.report.references import resolve

    files = write_report([resolve("cpu-epyc-2core-smoke")], tmp_path / "one")
    browser.get(files.html.resolve().as_uri())
    charts = browser.execute_script("""
        return Array.from(document.querySelectorAll('svg.chart')).map(svg => {
          const box = svg.getBoundingClientRect();
          return {kind: svg.dataset.chart, width: box.width, height: box.height,
                  marks: svg.querySelectorAll('rect.bar, polyline.trace, circle.roof-point')
                    .length};
        });""")
    kinds = [c["kind"] for c in charts]
    assert "radar" not in kinds
    assert kinds.count("bars") == 2 and kinds.count("roofline") == 1  # % of peak, cold start
    assert kinds.count("timeline") == 3
    for chart in charts:
        assert chart["width"] > 300 and chart["height"] > 150 and chart["marks"] > 0, chart
    order = browser.execute_script(
        "return Array.from(document.querySelectorAll('section.card')).map(s => s.id)")
    assert order[:3] == ["summary", "figures", "roofline-section"]
    fits = browser.execute_script("""
        const t = document.getElementById('figures-0');
        return t.getBoundingClientRect().width <= t.parentElement.clientWidth + 1;""")
    assert fits  # the figures table needs no sideways scrolling at 1400 px
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    keep = os.environ.get("REPORT_SCREENSHOT_DIR")
    target = Path(keep) if keep else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    full_page_png(browser, target / "report-one-device.png")
