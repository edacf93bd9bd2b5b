"""The first report a newcomer sees: one device, led by what one device can show (its
figures with % of peak, the roofline, the telemetry), scores only once there is something to
compare, and reference result sets to compare with."""

from __future__ import annotations

import re

import pytest

from bench.errors import UserError
from testbed.report import write_report
from testbed.report.references import REFERENCES_DIR, bundled, resolve
from tests.report_fixtures import ONE_THREAD

REFERENCE = "cpu-epyc-2core-smoke"


def sections(html: str) -> list[str]:
    return re.findall(r"<section class='card' id='([^']+)'", html)


def test_a_reference_set_is_bundled_and_named_sets_resolve(tmp_path):
    assert REFERENCE in bundled()
    assert resolve(REFERENCE) == REFERENCES_DIR / REFERENCE
    assert resolve(str(ONE_THREAD)) == ONE_THREAD
    with pytest.raises(UserError) as err:
        resolve("no-such-reference")
    assert REFERENCE in str(err.value)


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    return write_report([REFERENCES_DIR / REFERENCE], tmp_path_factory.mktemp("one"))


def test_one_device_leads_with_its_figures_and_has_no_scores(one_device):
    html = one_device.html.read_text(encoding="utf-8")
    assert sections(html) == ["summary", "figures", "roofline-section", "telemetry", "checks",
                              "appendix"]
    assert "data-chart='radar'" not in html and "id='composite'" not in html
    names = {p.name for p in one_device.charts}
    assert {"peak-share.svg", "cold-start.svg", "roofline.svg"} <= names
    assert not any(n.startswith(("bars-", "composite")) for n in names)
    # How to compare is said where the scores would be.
    assert "--reference NAME_OR_PATH" in html and REFERENCE in html


def test_the_figures_table_has_percentiles_cold_start_and_peak_share(one_device):
    html = one_device.html.read_text(encoding="utf-8")
    table = html[html.index("id='figures-0'"):]
    table = table[:table.index("</table>")]
    for header in ("latency p50 · p95 · p99", "cold: load · first iteration", "% of peak"):
        assert header in table
    gemm = table[table.index(">gemm-infer<"):]
    gemm = gemm[:gemm.index("</tr>")]
    assert "(est.)" in gemm  # the gemm's share of the estimated cpu peak
    assert re.search(r"[0-9.]+ (ms|s) · [0-9.]+ (ms|s) · [0-9.]+ (ms|s)", table)


def test_the_cpu_estimate_and_the_scopes_are_labelled(one_device):
    html = one_device.html.read_text(encoding="utf-8")
    assert "estimated from the host: fp32" in html  # the devices table's spec sheet
    assert "(estimate)" in html  # the roofline's compute roof
    scopes = html[html.index("What the telemetry figures cover"):]
    assert "process tree" in scopes and "other processes included" in scopes
    assert "host CPU, whole host" in html  # its own timeline panel
    md = one_device.markdown.read_text(encoding="utf-8")
    assert md.index("## Figures per workload") < md.index("## Plausibility checks")


def test_a_reference_makes_it_a_comparison(tmp_path):
    files = write_report([ONE_THREAD, resolve(REFERENCE)], tmp_path)
    html = files.html.read_text(encoding="utf-8")
    assert "scores" in sections(html) and "figures" not in sections(html)
    assert "composite-radar.svg" in {p.name for p in files.charts}
    assert html.count("id='figures-") == 2  # each device's figures, in the appendix
