"""One source for the vendor list: the backend modules in bench/devices/ (bench.vendors).

The JSON schemas keep their vendor enums (they document the formats for auditors without
Python), so this test is what keeps them, the images/ folders, the telemetry chains, the CLI
help and the docs in step with the backends: adding a vendor without updating one fails here
with the file and the fix.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bench.devices import BACKENDS
from bench.telemetry import FALLBACKS
from bench.vendors import VENDORS, discover
from tests.conftest import ROOT


def vendor_enums(node: object, pointer: str = "") -> Iterator[tuple[str, list[str]]]:
    """Every ``enum`` in a schema that lists vendors (recognised by holding "cuda")."""
    if isinstance(node, dict):
        enum = node.get("enum")
        if isinstance(enum, list) and "cuda" in enum:
            yield pointer or "/", enum
        for key, value in node.items():
            yield from vendor_enums(value, f"{pointer}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from vendor_enums(value, f"{pointer}/{i}")


def test_the_backend_modules_are_the_vendor_list():
    assert VENDORS == ("cpu", "ascend", "corex", "cuda", "jetson", "mlu", "rocm")
    assert tuple(BACKENDS) == VENDORS


def test_discovery_is_by_file_name_only(tmp_path):
    for name in ("base.py", "_helpers.py", "zeta.py", "cpu.py", "alpha.py", "notes.txt"):
        (tmp_path / name).write_text("")
    assert discover(tmp_path) == ("cpu", "alpha", "zeta")


@pytest.mark.parametrize("schema", sorted((ROOT / "schemas").glob("*.schema.json")),
                         ids=lambda p: p.name)
def test_schema_vendor_enums_follow_the_backends(schema):
    doc = json.loads(schema.read_text(encoding="utf-8"))
    for pointer, enum in vendor_enums(doc):
        assert sorted(enum) == sorted(VENDORS), (
            f"{schema.relative_to(ROOT)} {pointer}: enum {enum} differs from the backends in "
            f"bench/devices/ {list(VENDORS)}; write {json.dumps(list(VENDORS))} there")


def test_six_schemas_carry_the_vendor_enum():
    found = [p.name for p in (ROOT / "schemas").glob("*.schema.json")
             if list(vendor_enums(json.loads(p.read_text(encoding="utf-8"))))]
    assert len(found) == 6, found  # if this drops, a schema lost its vendor check


def test_every_vendor_has_an_image_whose_spec_matches_its_backend():
    assert sorted(p.name for p in (ROOT / "images").iterdir() if p.is_dir()) == sorted(VENDORS)
    for vendor in VENDORS:
        spec = yaml.safe_load((ROOT / "images" / vendor / "vendor.yaml").read_text())
        assert spec["bench_device"] == vendor
        assert spec["telemetry"]["backend"] == BACKENDS[vendor].telemetry, vendor
        assert spec["run"]["visible_devices_env"] in (None, BACKENDS[vendor].visible_devices_env,
                                                      "NVIDIA_VISIBLE_DEVICES"), vendor


def test_the_vendor_schema_names_every_telemetry_adapter():
    doc = json.loads((ROOT / "schemas" / "vendor.schema.json").read_text(encoding="utf-8"))
    names = doc["properties"]["telemetry"]["properties"]["backend"]["enum"]
    assert sorted(names) == sorted(FALLBACKS)
    for vendor, cls in BACKENDS.items():
        assert cls.telemetry in FALLBACKS, vendor


def test_bench_list_shows_every_vendor_with_its_detection():
    out = subprocess.run([sys.executable, "-m", "bench", "list"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300).stdout
    section = out.split("suites:")[0].splitlines()[1:]
    assert [line.split()[0] for line in section] == list(VENDORS)
    assert section[0].split()[1] == "available"  # cpu
    assert any("torch_npu is not installed" in line for line in section)
    assert any("not a ROCm (HIP) build" in line for line in section)


def test_help_texts_and_docs_name_every_vendor():
    helps = [subprocess.run([sys.executable, "-m", "bench", "run", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120).stdout,
             subprocess.run([str(Path(sys.executable).with_name("invoke")), "--help", "bench"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120).stdout]
    vendors_md = (ROOT / "docs" / "vendors.md").read_text(encoding="utf-8")
    for vendor in VENDORS:
        for text in helps:
            assert vendor in " ".join(text.split()), vendor
        assert f"| `{vendor}` |" in vendors_md, f"docs/vendors.md has no row for {vendor}"


def test_the_package_description_names_every_accelerator_vendor_or_none():
    """pyproject.toml's description named NVIDIA, Cambricon, Iluvatar and Jetson: 4 of the
    backends. A list there is one more copy to keep, so it names all of them or none; each
    vendor is known by its backend name and the maker its docs/vendors.md row names first."""
    import tomllib

    description = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "project"]["description"].lower()
    rows = {}
    for line in (ROOT / "docs" / "vendors.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) > 2 and cells[0].strip("`") in VENDORS:
            rows.setdefault(cells[0].strip("`"), cells[1])
    makers = {v: rows[v].split()[0].lower() for v in VENDORS if v != "cpu"}
    assert len(set(makers.values())) == len(makers), makers
    named = [v for v, maker in makers.items() if v in description or maker in description]
    assert named in ([], list(makers)), (
        f"pyproject.toml's description names {named} of {list(makers)}: name every vendor "
        "or none (none: nothing to keep in step)")


def test_detection_that_does_not_answer_in_time_is_unknown_and_stopped():
    """`list` asks a child process (it imports torch); one that has not answered within the
    timeout is stopped, and every vendor is listed as unknown with the reason."""
    from bench.vendors import DetectionChild

    child = DetectionChild()
    found = child.result(timeout_s=0.01)  # no interpreter loads torch in 10 ms
    assert [p.vendor for p in found] == list(VENDORS)
    assert {p.state for p in found} == {"unknown"}
    assert "did not answer within 0.01 s" in found[0].reason
    assert child.proc.poll() is not None, "the detection child was left running"
    answered = DetectionChild().result()
    assert answered[0].state == "available" and answered[0].vendor == "cpu"
