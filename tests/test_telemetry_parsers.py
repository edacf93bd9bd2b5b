"""Property-based tests of every text parser (tegrastats lines, cnmon tables, ixsmi CSV,
npu-smi tables, rocm-smi JSON, hy-smi tables).

Three properties each: (1) no input makes the parser raise; (2) it never invents a value:
every number it returns is written in the input; (3) well-formed input generated from known
values parses back to exactly those values, and an unreadable field is None with a reason
while the other fields are unaffected.
"""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.telemetry.ascend import parse_npu_smi
from bench.telemetry.base import MIB
from bench.telemetry.cndev import parse_cnmon
from bench.telemetry.ixml import IXSMI_COLUMNS, parse_ixsmi_csv, parse_value, query_fields
from bench.telemetry.jetson import parse_tegrastats_line
from bench.telemetry.rocm import parse_hy_smi, parse_rocm_smi_json
from tests.conftest import FIXTURES

PROFILE = settings(max_examples=150, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])
NUMBERS = re.compile(r"-?\d+(?:\.\d+)?")


def numbers_in(text: str) -> set[float]:
    return {float(x) for x in NUMBERS.findall(text)}


def written(value: float, found: set[float]) -> bool:
    """``value`` (after undoing a unit conversion) is one of the numbers in the input."""
    return any(math.isclose(value, f, rel_tol=1e-9, abs_tol=1e-9) for f in found)


# -- tegrastats -----------------------------------------------------------------------------
TEGRA_TOKENS = ["RAM 3162/7620MB", "(lfb 8x4MB)", "SWAP 0/3810MB", "CPU [1%@1510,off]",
                "EMC_FREQ 0%@2133", "GR3D_FREQ 14%@[420]", "GR3D_FREQ 33%", "GR3D_FREQ 0%@[0,0]",
                "gpu@50.7C", "GPU@46C", "GPU@-256C", "tj@50C", "VDD_IN 3902/3611",
                "VDD_IN 4952mW/4952mW", "VDD_CPU_GPU_CV 1013mW/1013mW", "NC 0mW/0mW",
                "VIN_SYS_5V0 4707mW/4707mW", "APE 200", "VIC off", "RAM", "GR3D_FREQ", "@",
                "mW", "/", "%", "C", "[", "]"]
tegra_like = st.lists(st.one_of(st.sampled_from(TEGRA_TOKENS), st.text(max_size=12)),
                      max_size=25).map(" ".join)


@PROFILE
@given(st.one_of(st.text(), tegra_like))
def test_tegrastats_parser_never_raises_nor_invents(line):
    reading = parse_tegrastats_line(line)
    found = numbers_in(line)
    v = reading.values
    for name, value in v.items():
        assert (value is None) == (name in reading.reasons), name
    if v["util_pct"] is not None:
        assert written(v["util_pct"], found) and 0 <= v["util_pct"] <= 100
    if v["mem_used_bytes"] is not None:
        assert written(v["mem_used_bytes"] / MIB, found)
        assert written(v["mem_total_bytes"] / MIB, found)
        assert v["mem_used_bytes"] <= v["mem_total_bytes"]
    if v["temp_c"] is not None:
        assert written(v["temp_c"], found)
    if v["clock_hz"] is not None:
        assert written(v["clock_hz"] / 1e6, found)
    for rail_w in reading.rails_w.values():
        assert written(rail_w * 1000, found)
    if v["power_w"] is not None:
        rails = reading.rails_w
        board = [rails[r] for r in ("VDD_IN", "POM_5V_IN") if r in rails]
        assert v["power_w"] == (board[0] if board else
                                pytest.approx(sum(w for r, w in rails.items() if r != "NC")))


@st.composite
def tegra_lines(draw):
    """A tegrastats line in one of the recorded formats, with the values it must parse to."""
    fmt = draw(st.sampled_from(["xavier_jp4", "jp5", "jp6", "agx_jp6"]))
    total = draw(st.integers(1000, 65000))
    used = draw(st.integers(0, total))
    util = draw(st.integers(0, 100))
    freq = draw(st.integers(0, 1500))
    temp = draw(st.integers(-40, 105)) + draw(st.sampled_from([0, 0.5, 0.25, 0.375]))
    vdd_in = draw(st.integers(0, 60000))
    rails = draw(st.lists(st.integers(0, 30000), min_size=3, max_size=3))
    parts = [f"RAM {used}/{total}MB (lfb 8x4MB) SWAP 0/3810MB (cached 0MB)",
             "CPU [1%@1510,0%@1510,off,off] EMC_FREQ 0%@2133"]
    expect = {"util_pct": float(util), "mem_used_bytes": float(used * MIB),
              "mem_total_bytes": float(total * MIB), "temp_c": float(temp)}
    if fmt == "xavier_jp4":
        parts += [f"GR3D_FREQ {util}%", f"AO@40.5C GPU@{temp}C PMIC@50C",
                  f"VDD_IN {vdd_in}/{vdd_in} VDD_CPU_GPU_CV {rails[0]}/{rails[0]}"]
        expect.update(clock_hz=None, power_w=vdd_in / 1000)
    elif fmt in ("jp5", "jp6"):
        gpu = "GPU" if fmt == "jp5" else "gpu"
        parts += [f"GR3D_FREQ {util}%@[{freq}]", f"cpu@48.5C {gpu}@{temp}C tj@49C",
                  f"VDD_IN {vdd_in}mW/{vdd_in}mW VDD_SOC {rails[0]}mW/{rails[0]}mW"]
        expect.update(clock_hz=freq * 1e6, power_w=vdd_in / 1000)
    else:
        parts += [f"GR3D_FREQ {util}%@[{freq},{freq}]", f"CPU@52.5C GPU@{temp}C tj@53C",
                  f"VDD_GPU_SOC {rails[0]}mW/{rails[0]}mW VDD_CPU_CV {rails[1]}mW/1mW",
                  f"VIN_SYS_5V0 {rails[2]}mW/2mW NC 0mW/0mW"]
        expect.update(clock_hz=freq * 1e6, power_w=sum(rails) / 1000)
    return " ".join(parts), expect


@PROFILE
@given(tegra_lines())
def test_tegrastats_round_trip(case):
    line, expect = case
    values = parse_tegrastats_line(line).values
    for name, value in expect.items():
        assert values[name] == (pytest.approx(value) if value is not None else None), name


@PROFILE
@given(st.sampled_from(["xavier_nx_jp4", "xavier_nx_jp5", "orin_nano_jp6"]),
       st.sampled_from(["GR3D_FREQ", "RAM", "VDD_IN"]),
       st.text(alphabet="abcdefxyz!?#-_ ", min_size=1, max_size=8))
def test_tegrastats_corrupted_field_is_null_and_others_intact(fixture, token, garbage):
    line = (FIXTURES / "telemetry" / "tegrastats" / f"{fixture}.txt").read_text().splitlines()[0]
    corrupted = re.sub(rf"{token} \S+", f"{token} {garbage}", line, count=1)
    good, bad = parse_tegrastats_line(line).values, parse_tegrastats_line(corrupted).values
    field = {"GR3D_FREQ": "util_pct", "RAM": "mem_used_bytes", "VDD_IN": "power_w"}[token]
    if token == "VDD_IN":  # without the board rail the sum of the remaining rails is used
        assert bad["power_w"] != good["power_w"]
    else:
        assert bad[field] is None
        assert field in parse_tegrastats_line(corrupted).reasons
    untouched = {"temp_c"} | ({"util_pct"} if token != "GR3D_FREQ" else set())
    for name in untouched:
        assert bad[name] == good[name]


# -- cnmon ----------------------------------------------------------------------------------
def cnmon_table(cards: list[dict]) -> str:
    lines = ["+" + "-" * 78 + "+",
             "| CNMON v5.10.13                                               Driver v5.10.13 |",
             "| Card  VF  Name       Firmware |               Bus-Id | Util        Ecc-Error |",
             "| Fan   Temp      Pwr:Usage/Cap |         Memory-Usage | SR-IOV   Compute-Mode |",
             "|" + "=" * 31 + "+" + "=" * 22 + "+" + "=" * 23 + "|"]
    for c in cards:
        lines.append(f"| {c['index']:<5} /   {c['name']:<10} v1.1.6 |         "
                     f"0000:{c['index'] + 16:02X}:00.0 | {c['util']}%{'N/A':>17} |")
        lines.append(f"|  0%   {c['temp']}C        {c['power']} W/ 250 W | "
                     f"{c['used']:>5} MiB/ {c['total']} MiB | N/A           Default |")
        lines.append("+" + "-" * 31 + "+" + "-" * 22 + "+" + "-" * 23 + "+")
    return "\n".join(lines) + "\n"


cnmon_cards = st.lists(st.fixed_dictionaries({
    "name": st.sampled_from(["MLU370-X8", "MLU370-X4", "MLU370-S4", "MLU590-M9"]),
    "util": st.integers(0, 100), "temp": st.integers(0, 110),
    "power": st.one_of(st.integers(0, 600), st.just("N/A")),
    "used": st.integers(0, 98304), "total": st.integers(1, 98304)}), min_size=1, max_size=8)


@PROFILE
@given(cnmon_cards)
def test_cnmon_round_trip(cards):
    for i, c in enumerate(cards):
        c["index"] = i
    parsed = parse_cnmon(cnmon_table(cards))
    assert sorted(parsed) == list(range(len(cards)))
    for c in cards:
        card = parsed[c["index"]]
        assert card.name == c["name"]
        assert card.values["util_pct"] == c["util"] and card.values["temp_c"] == c["temp"]
        assert card.values["mem_used_bytes"] == c["used"] * MIB
        assert card.values["mem_total_bytes"] == c["total"] * MIB
        if c["power"] == "N/A":
            assert card.values["power_w"] is None
            assert card.reasons["power_w"] == "cnmon printed 'N/A' for power"
        else:
            assert card.values["power_w"] == c["power"]


cnmon_like = st.lists(st.one_of(
    st.sampled_from(["| 0     /   MLU370-X8    v1.1.6 |         0000:39:00.0 | 0%    N/A |",
                     "|  0%   32C        106 W/ 250 W |     0 MiB/ 23374 MiB | N/A Default |",
                     "| 1 / MLU370 v1 | 0000:3D:00.0 | 7% N/A |", "| x | y | z |", "|||||",
                     "|  N/A  N/A  N/A / N/A | N/A MiB/ N/A MiB | N/A Default |"]),
    st.text(max_size=40).map(lambda t: f"| {t} | 0000:01:00.0 | {t} |"),
    st.text(max_size=60)), max_size=12).map("\n".join)


@PROFILE
@given(st.one_of(st.text(), cnmon_like))
def test_cnmon_parser_never_raises_nor_invents(text):
    found = numbers_in(text)
    for card in parse_cnmon(text).values():
        for name, value in card.values.items():
            assert (value is None) == (name in card.reasons), name
            if value is None:
                continue
            shown = value / MIB if name.startswith("mem_") else value
            assert written(shown, found), (name, value)
        if card.values["util_pct"] is not None:
            assert 0 <= card.values["util_pct"] <= 100


# -- ixsmi ----------------------------------------------------------------------------------
@PROFILE
@given(st.text(max_size=30), st.sampled_from(sorted(IXSMI_COLUMNS)))
def test_ixsmi_cell_is_a_number_written_in_it_or_null_with_reason(token, column):
    _, factor, negative_ok = IXSMI_COLUMNS[column]
    value, reason = parse_value(token, factor, negative_ok)
    if value is None:
        assert reason
        return
    assert reason is None and math.isfinite(value)
    number = re.match(r"\s*(-?\d+(?:\.\d+)?)", token)
    assert number and float(number.group(1)) * factor == value
    assert negative_ok or value >= 0


CELL = st.one_of(st.integers(0, 100000).map(str), st.sampled_from(
    ["N/A", "[N/A]", "[Not Supported]", "ERR!", "", "0x10", "12 MiB", "1.5e3", "nan", "-1"]))


@PROFILE
@given(st.lists(st.lists(CELL, min_size=6, max_size=6), min_size=1, max_size=8),
       st.sampled_from(["gpu.power.draw", "power.draw"]))
def test_ixsmi_rows_parse_cell_by_cell(rows, power_field):
    lines = [", ".join([str(i), "Iluvatar BI-V100", *cells]) for i, cells in enumerate(rows)]
    parsed, problems = parse_ixsmi_csv("\n".join(lines) + "\n", power_field)
    assert problems == [] and sorted(parsed) == list(range(len(rows)))
    order = query_fields(power_field)[2:]
    for i, cells in enumerate(rows):
        row = parsed[i]
        for column, cell in zip(order, cells, strict=True):
            name, factor, negative_ok = IXSMI_COLUMNS["power" if column == power_field
                                                      else column]
            expected, _ = parse_value(cell, factor, negative_ok)
            if name == "util_pct" and expected is not None and expected > 100:
                expected = None
            assert row.values[name] == expected, (column, cell)
            assert (row.values[name] is None) == (name in row.reasons)


@PROFILE
@given(st.text())
def test_ixsmi_parser_never_raises_nor_invents(text):
    rows, problems = parse_ixsmi_csv(text, "gpu.power.draw")
    found = numbers_in(text)
    for row in rows.values():
        for name, value in row.values.items():
            if value is not None:
                _, factor, _ = IXSMI_COLUMNS[next(c for c, (n, _, _) in IXSMI_COLUMNS.items()
                                                  if n == name)]
                assert written(value / factor, found)
    assert all(isinstance(p, str) and p for p in problems)


# -- npu-smi info ---------------------------------------------------------------------------
def npu_smi_table(chips: list[dict]) -> str:
    lines = ["+" + "-" * 96 + "+",
             "| npu-smi 24.1.rc2                 Version: 24.1.rc2" + " " * 46 + "|",
             "| NPU   Name                | Health        | Power(W)    Temp(C)           "
             "Hugepages-Usage(page)|",
             "| Chip                      | Bus-Id        | AICore(%)   Memory-Usage(MB)  "
             "HBM-Usage(MB)        |",
             "+" + "=" * 27 + "+" + "=" * 15 + "+" + "=" * 52 + "+"]
    for c in chips:
        lines.append(f"| {c['npu']:<5} {c['name']:<19} | OK            | {c['power']:<11} "
                     f"{c['temp']:<17} 0    / 0             |")
        lines.append(f"| 0                         | 0000:C1:00.0  | {c['util']:<11} "
                     f"0    / 0          {c['used']:<4} / {c['total']:<12} |")
        lines.append("+" + "=" * 27 + "+" + "=" * 15 + "+" + "=" * 52 + "+")
    return "\n".join(lines) + "\n"


npu_chips = st.lists(st.fixed_dictionaries({
    "name": st.sampled_from(["910B1", "910B2", "910B3", "910B4", "910A", "910B2C"]),
    "power": st.one_of(st.floats(0, 600, allow_nan=False).map(lambda x: f"{x:.1f}"),
                       st.sampled_from(["NA", "-"])),
    "temp": st.integers(0, 110), "util": st.integers(0, 100),
    "used": st.integers(0, 65536), "extra": st.integers(0, 65536)}), min_size=1, max_size=8)


@PROFILE
@given(npu_chips)
def test_npu_smi_round_trip(chips):
    for i, c in enumerate(chips):
        c["npu"], c["total"] = i, c["used"] + c["extra"] + 1
    parsed = parse_npu_smi(npu_smi_table(chips))
    assert [(p.npu, p.chip, p.name) for p in parsed] == [(c["npu"], 0, c["name"]) for c in chips]
    for c, p in zip(chips, parsed, strict=True):
        assert p.values["temp_c"] == c["temp"] and p.values["util_pct"] == c["util"]
        assert p.values["mem_used_bytes"] == c["used"] * MIB
        assert p.values["mem_total_bytes"] == c["total"] * MIB
        if c["power"] in ("NA", "-"):
            assert p.values["power_w"] is None and c["power"] in p.reasons["power_w"]
        else:
            assert p.values["power_w"] == float(c["power"])


npu_like = st.lists(st.one_of(
    st.sampled_from(["| NPU   Name | Health | Power(W)  Temp(C)  Hugepages-Usage(page)|",
                     "| Chip | Bus-Id | AICore(%) Memory-Usage(MB) HBM-Usage(MB) |",
                     "| 0     910B3  | OK  | 101.8  43  0 / 0 |",
                     "| 0            | 0000:C1:00.0 | 0  0 / 0  3318 / 65536 |",
                     "| 1 Ascend910 | OK | - NA 0 / 0 |", "| 1 1 | NA | x 5/ 3 7/ |",
                     "| No running processes found in NPU 0 |", "| a | b | c | d |", "|||"]),
    st.text(max_size=30).map(lambda t: f"| 0 {t} | {t} | {t} |"),
    st.text(max_size=60)), max_size=14).map("\n".join)


@PROFILE
@given(st.one_of(st.text(), npu_like))
def test_npu_smi_parser_never_raises_nor_invents(text):
    found = numbers_in(text)
    for chip in parse_npu_smi(text):
        for name, value in chip.values.items():
            assert (value is None) == (name in chip.reasons), name
            if value is None:
                continue
            shown = value / MIB if name.startswith("mem_") else value
            assert written(shown, found), (name, value)
        if chip.values.get("util_pct") is not None:
            assert 0 <= chip.values["util_pct"] <= 100


# -- rocm-smi --json ------------------------------------------------------------------------
ROCM_VALUE = st.one_of(st.integers(-5, 10**12).map(str), st.floats(-5, 1e6, allow_nan=False)
                       .map(lambda x: f"{x:.1f}"), st.sampled_from(
    ["N/A", "N/A (Secondary die)", "-1", "", "abc", "1e3", "nan"]), st.integers(0, 800),
                       st.none(), st.booleans())
ROCM_KEYS = ["GPU use (%)", "VRAM Total Memory (B)", "VRAM Total Used Memory (B)",
             "Current Socket Graphics Package Power (W)", "Average Graphics Package Power (W)",
             "Temperature (Sensor junction) (C)", "Temperature (Sensor edge) (C)",
             "Accumulated Energy (uJ)", "Card Series"]


@PROFILE
@given(st.dictionaries(st.sampled_from(["card0", "card1", "card12", "system", "cardX", "x"]),
                       st.one_of(st.dictionaries(st.sampled_from(ROCM_KEYS), ROCM_VALUE),
                                 ROCM_VALUE), max_size=5),
       st.text(max_size=40))
def test_rocm_smi_parser_never_raises_nor_invents(doc, noise):
    import json

    text = noise.replace("{", "").replace("}", "") + "\n" + json.dumps(doc)
    found = numbers_in(json.dumps(doc))
    for card in parse_rocm_smi_json(text).values():
        for name, value in card.values.items():
            assert (value is None) == (name in card.reasons), name
            if value is not None:
                shown = value * 1e6 if name == "energy_j" else value
                assert written(shown, found), (name, value)
        if card.values["util_pct"] is not None:
            assert 0 <= card.values["util_pct"] <= 100
    assert parse_rocm_smi_json(noise) == {} or "{" in noise


# -- hy-smi ---------------------------------------------------------------------------------
HY_HEADER = "DCU     Temp     AvgPwr     Perf     PwrCap     VRAM%      DCU%      Mode"
hy_rows = st.lists(st.fixed_dictionaries({
    "temp": st.floats(0, 120, allow_nan=False).map(lambda x: round(x, 1)),
    "power": st.floats(0, 900, allow_nan=False).map(lambda x: round(x, 1)),
    "util": st.integers(0, 100), "unit": st.sampled_from(["C", "°C"])}),
    min_size=1, max_size=8)


@PROFILE
@given(hy_rows, st.integers(0, 4))
def test_hy_smi_round_trip_and_a_corrupted_cell(rows, corrupt):
    lines = ["=" * 30 + " System Management Interface " + "=" * 30, "=" * 86, HY_HEADER]
    for i, r in enumerate(rows):
        power = "abcW" if i == corrupt else f"{r['power']}W"
        lines.append(f"{i:<8}{r['temp']}{r['unit']:<6}{power:<11}auto     300.0W     0%"
                     f"         {r['util']}%        Normal   ")
    parsed = parse_hy_smi("\n".join(lines) + "\n")
    assert sorted(parsed) == list(range(len(rows)))
    for i, r in enumerate(rows):
        values = parsed[i].values
        assert values["temp_c"] == r["temp"] and values["util_pct"] == r["util"]
        if i == corrupt:
            assert values["power_w"] is None and "abcW" in parsed[i].reasons["power_w"]
        else:
            assert values["power_w"] == r["power"]


@PROFILE
@given(st.one_of(st.text(), st.lists(st.one_of(
    st.just(HY_HEADER), st.text(max_size=50), st.lists(st.sampled_from(
        ["0", "1", "49.0C", "N/A", "118.0W", "auto", "0%", "140%", "x", "0.0%"]),
        max_size=9).map(" ".join)), max_size=10).map("\n".join)))
def test_hy_smi_parser_never_raises_nor_invents(text):
    found = numbers_in(text)
    for card in parse_hy_smi(text).values():
        for name, value in card.values.items():
            assert (value is None) == (name in card.reasons), name
            if value is not None:
                assert written(value, found), (name, value)
