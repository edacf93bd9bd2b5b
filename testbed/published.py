"""Published tables as result documents (``invoke import``).

Labs compare their runs with what vendors and papers publish, and a published table can be
wrong. Imported here, each row of a table becomes a document of kind ``bench.published``
(``schemas/published.schema.json``): its citation, the device and workload it describes,
and every cell with its status, in SI units under the report's metric names. ``invoke
report`` then checks and scores published and measured results side by side, and compares a
vendor's claims with measurements.

Two shapes are read, from CSV or YAML (``rows:``, with the citation in the file):

- **wide**: a ``device`` and a ``workload`` column, then one column per metric with its unit
  in the header (``throughput [images/s]``, ``power (W)``, ``latency [ms]``); ``mode``,
  ``precision``, ``batch size``, ``streams``, ``config`` columns where the table has them.
- **long** (the shape vendors publish): one row per model with ``model``, ``framework``,
  ``batch size``, ``latency``, ``throughput``, ``precision`` and ``concurrent streams``;
  the device from a column or ``--device``, the throughput's unit in its header or a
  ``unit`` column.

A cell reading ``--`` (or n/a, not run) is ``not_run``, a blank one ``empty``, OOM /
unsupported say so; anything else that is not a number is refused with the row and column.
Where the model is one of this test-bed's workloads, the FLOPs of one item are counted as for
a measurement (``bench.flops``, on the meta device, at the row's shape), so the report can
bound the published throughput by the device's peak.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import __version__
from bench.errors import UserError
from bench.jsonio import atomic_write_json, sanitize, seal
from bench.schema import validation_errors
from bench.specs import find_spec

KIND = "bench.published"
SCHEMA_VERSION = "1.0"
MAX_ROWS = 10_000  # rows of one table (a published table has dozens)

# -- columns -------------------------------------------------------------------------------
# Identity columns, by their normalised header (lower case, words joined by "_").
ID_COLUMNS: dict[str, tuple[str, ...]] = {
    "device": ("device", "gpu", "accelerator", "chip", "hardware"),
    "workload": ("workload",),
    "model": ("model", "network", "benchmark"),
    "mode": ("mode", "phase"),
    "group": ("group",),
    "precision": ("precision", "dtype", "data_type"),
    "batch_size": ("batch_size", "batch", "bs"),
    "streams": ("streams", "concurrent_streams", "concurrency", "concurrent_requests",
                "instances"),
    "framework": ("framework", "container"),
    "config": ("config",),
    "count": ("count", "devices", "num_devices", "number_of_devices", "gpus"),
    "system": ("system", "server", "platform"),
    "unit": ("unit", "units", "throughput_unit"),
    "label": ("label",),
}
ALIAS_TO_ID = {alias: key for key, aliases in ID_COLUMNS.items() for alias in aliases}

# Metric columns: header name -> (report metric, kind of unit).
METRICS: dict[str, tuple[str, str]] = {
    **dict.fromkeys(("throughput", "throughput_items_per_s", "perf", "performance"),
                    ("throughput_items_per_s", "rate")),
    **dict.fromkeys(("latency", "latency_mean", "latency_mean_s", "mean_latency",
                     "average_latency", "avg_latency", "forward_latency"),
                    ("latency_mean_s", "time")),
    **{f"{p}": (f"latency_{q}_s", "time") for q in ("p50", "p90", "p99")
       for p in (f"latency_{q}", f"latency_{q}_s", f"{q}_latency")},
    **dict.fromkeys(("power", "power_w_mean", "average_power", "avg_power", "power_w"),
                    ("power_w_mean", "power")),
    **dict.fromkeys(("efficiency", "energy_efficiency", "items_per_j", "perf_per_watt",
                     "throughput_per_watt"), ("items_per_j", "efficiency")),
    **dict.fromkeys(("utilisation", "utilization", "device_util_pct", "gpu_util", "util"),
                    ("device_util_pct", "percent")),
    **dict.fromkeys(("temperature", "temp", "temp_c_mean", "average_temperature"),
                    ("temp_c_mean", "temperature")),
    **dict.fromkeys(("memory", "memory_used", "device_memory"), ("memory", "memory")),
    "device_mem_used_pct_mean": ("device_mem_used_pct_mean", "percent"),
    "device_mem_used_bytes_peak": ("device_mem_used_bytes_peak", "bytes"),
    **dict.fromkeys(("flop_per_item", "flops_per_item", "flops"), ("flop_per_item", "flop")),
}

ITEMS = {"img": "images", "image": "images", "images": "images", "seq": "sequences",
         "sequence": "sequences", "sequences": "sequences", "sentences": "sequences",
         "token": "tokens", "tokens": "tokens", "tok": "tokens", "char": "characters",
         "chars": "characters", "characters": "characters", "query": "queries",
         "queries": "queries", "sample": "samples", "samples": "samples", "item": "items",
         "items": "items"}
# Units that count whatever the row's workload counts (a wide table mixes images and
# sequences in one column): the document writes the workload's own item.
GENERIC_ITEMS = ("items", "samples")
TIME = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "us": 1e-6,
        "µs": 1e-6, "μs": 1e-6, "ns": 1e-9}
POWER = {"w": 1.0, "kw": 1e3, "mw": 1e-3}
BYTES = {"b": 1.0, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 2.0**10,
         "mib": 2.0**20, "gib": 2.0**30, "tib": 2.0**40}
FLOP = {"flop": 1.0, "flops": 1.0, "kflop": 1e3, "mflop": 1e6, "gflop": 1e9, "gflops": 1e9,
        "tflop": 1e12, "tflops": 1e12, "gmac": 2e9, "gmacs": 2e9}
NOT_RUN = {"--", "-", "—", "–", "n/a", "na", "not run", "not tested", "nr", "x"}
PRECISIONS = {"fp32": "fp32", "float32": "fp32", "tf32": "tf32", "fp16": "fp16",
              "float16": "fp16", "half": "fp16", "bf16": "bf16", "bfloat16": "bf16",
              "int8": "int8", "fp8": "fp8", "int4": "int4", "mixed": "mixed", "amp": "mixed"}
MODES = {"infer": "infer", "inference": "infer", "predict": "infer", "train": "train",
         "training": "train"}
# Other names the publications use for this test-bed's workloads (normalised: lower case,
# letters and digits only).
WORKLOAD_ALIASES = {"resnet34": "resnet", "unet": "unet", "yolov10n": "yolov10n",
                    "bertbase": "bert", "bertbasecased": "bert", "berttiny": "bert-tiny",
                    "charlstm": "lstm", "lstm": "lstm", "qwen205b": "qwen2-0.5b",
                    "llama38b": "llama3-8b", "glm49b": "glm4-9b", "ldm": "ldm"}


def norm(header: str) -> str:
    return re.sub(r"[^a-z0-9%]+", "_", header.strip().lower()).strip("_")


def squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


@dataclass(frozen=True)
class Unit:
    """A printed unit: the SI unit the document records, and how to get there."""

    si: str
    factor: float = 1.0
    offset: float = 0.0
    item: str | None = None  # the item of a rate or an efficiency ("images")

    def convert(self, value: float) -> float:
        return value * self.factor + self.offset


def _item(text: str) -> str | None:
    return ITEMS.get(text.strip().lower().rstrip("s") if text.strip().lower() not in ITEMS
                     else text.strip().lower())


def parse_unit(kind: str, text: str) -> Unit | None:
    """The unit ``text`` for a metric of ``kind``; None when it is not one."""
    t = text.strip().replace(" ", "").replace("·", "*")
    low = t.lower()
    if kind == "time":
        return Unit("s", TIME[low]) if low in TIME else None
    if kind == "power":
        return Unit("W", POWER[low]) if low in POWER else None
    if kind == "percent":
        return Unit("%") if low in ("%", "pct", "percent") else None
    if kind == "temperature":
        if low in ("c", "°c", "degc", "celsius"):
            return Unit("degC")
        if low in ("f", "°f", "degf"):
            return Unit("degC", 5 / 9, -32 * 5 / 9)
        return Unit("degC", 1.0, -273.15) if low in ("k", "kelvin") else None
    if kind == "bytes":
        return Unit("B", BYTES[low]) if low in BYTES else None
    if kind == "flop":
        per = re.fullmatch(r"([a-z]+)(?:/([a-z]+))?", low)
        if per and per.group(1) in FLOP:
            return Unit("FLOP/item", FLOP[per.group(1)], item=_item(per.group(2) or "") or None)
        return None
    if kind == "memory":
        if low in ("%", "pct", "percent"):
            return Unit("%")
        return Unit("B", BYTES[low]) if low in BYTES else None
    if kind == "rate":
        if low in ("qps", "queries/s"):
            return Unit("queries/s", item="queries")
        m = re.fullmatch(r"([a-z]+)/(s|sec|second)", low)
        item = _item(m.group(1)) if m else None
        return Unit(f"{item}/s", item=item) if item else None
    if kind == "efficiency":
        m = re.fullmatch(r"\(?([a-z]+)(?:/j|/s\)?/w|/\(s\*w\)|/ws|/s/w)", low)
        item = _item(m.group(1)) if m else None
        return Unit(f"{item}/J", item=item) if item else None
    return None


@dataclass(frozen=True)
class MetricColumn:
    header: str
    metric: str
    kind: str
    unit_text: str  # as printed ("" when a unit column gives it)


def split_header(header: str) -> tuple[str, str]:
    """``throughput [images/s]`` or ``Latency (ms)`` -> (name, unit)."""
    m = re.fullmatch(r"\s*(.*?)\s*[\[(]\s*([^\])]*?)\s*[\])]\s*", header)
    return (m.group(1), m.group(2)) if m else (header.strip(), "")


@dataclass
class Layout:
    """Which column of a table is what."""

    ids: dict[str, str] = field(default_factory=dict)  # id key -> header
    metrics: list[MetricColumn] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # kept as text in workload.info

    @property
    def shape(self) -> str:
        vendor = "model" in self.ids or "framework" in self.ids or "streams" in self.ids
        return "long" if vendor and "workload" not in self.ids else "wide"


def layout(headers: list[str], where: str) -> Layout:
    out = Layout()
    for header in headers:
        name, unit = split_header(header)
        key = norm(name)
        if not unit and key in ALIAS_TO_ID:
            if ALIAS_TO_ID[key] in out.ids:
                raise UserError(f"{where}: columns {out.ids[ALIAS_TO_ID[key]]!r} and {header!r} "
                                f"both give the {ALIAS_TO_ID[key]}.", "Keep one of them.")
            out.ids[ALIAS_TO_ID[key]] = header
        elif key in METRICS:
            metric, kind = METRICS[key]
            out.metrics.append(MetricColumn(header, metric, kind, unit))
        elif unit and re.fullmatch(r"[a-z][a-z0-9_]*", key):
            raise UserError(f"{where}: column {header!r} is not a metric the report knows.",
                            "Name it as the report does (throughput, latency, power, "
                            "efficiency, utilisation, temperature, memory, flop_per_item) "
                            "with its unit in brackets, e.g. 'throughput [images/s]'.")
        else:
            out.extra.append(header)
    if "workload" not in out.ids and "model" not in out.ids:
        raise UserError(f"{where}: no workload column (workload, model or network).",
                        "Add one naming the model of each row.")
    if not any(c.metric == "throughput_items_per_s" for c in out.metrics) and not out.metrics:
        raise UserError(f"{where}: no metric column.",
                        "Add e.g. 'throughput [images/s]' with the published figures.")
    return out


# -- cells ---------------------------------------------------------------------------------
NUMBER = re.compile(r"[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?")


def parse_cell(text: Any, unit: Unit | None, where: str) -> dict[str, Any]:
    """A cell as the document records it: value in SI units and the cell's status."""
    raw = "" if text is None else str(text).strip()
    low = raw.lower()
    if raw == "":
        return {"value": None, "status": "empty", "reason": "the table leaves this cell blank"}
    if low in NOT_RUN:
        return {"value": None, "status": "not_run",
                "reason": f"the table says not run ({raw!r})"}
    if low in ("oom", "out of memory"):
        return {"value": None, "status": "oom", "reason": f"the table says {raw!r}"}
    if low in ("unsupported", "not supported", "n.s."):
        return {"value": None, "status": "unsupported", "reason": f"the table says {raw!r}"}
    number = raw.rstrip("*†‡ ").replace("\u2009", "").replace("_", "")
    if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", number):
        number = number.replace(",", "")
    if not NUMBER.fullmatch(number):
        raise UserError(f"{where}: {raw!r} is not a number.",
                        "Write the figure, '--' for not run, or leave the cell blank.")
    value = float(number)
    if not math.isfinite(value) or unit is None:
        raise UserError(f"{where}: {raw!r} is not a finite figure with a unit.",
                        "Give the column's unit in its header, e.g. 'latency [ms]'.")
    cell = {"value": unit.convert(value), "status": "published"}
    if number != raw:
        cell["reason"] = f"printed as {raw!r} (footnote marks dropped)"
    return cell


# -- citation ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Citation:
    title: str
    table: str
    publisher: str
    role: str
    url: str | None = None
    doi: str | None = None
    page: int | str | None = None
    date: str | None = None
    notes: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"title": self.title, "table": self.table, "page": self.page,
                               "publisher": self.publisher, "role": self.role}
        for key in ("url", "doi", "date", "notes"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


def citation(given: dict[str, Any], where: str) -> Citation:
    missing = [k for k in ("title", "table", "publisher", "role") if not given.get(k)]
    if not given.get("url") and not given.get("doi"):
        missing.append("url or doi")
    if missing:
        raise UserError(f"{where}: the citation lacks {', '.join(missing)}.",
                        "Give --title, --url or --doi, --table-name, --publisher, --role "
                        "(vendor or independent) and --page (left out: a web page), or a "
                        "'source:' section in the YAML file.")
    if given["role"] not in ("vendor", "independent"):
        raise UserError(f"{where}: role {given['role']!r} is neither vendor nor independent.",
                        "vendor: the device's maker publishes the figures; independent: a "
                        "third party measured them.")
    page = given.get("page")
    if isinstance(page, str) and page.strip().isdigit():
        page = int(page)
    return Citation(title=str(given["title"]), table=str(given["table"]),
                    publisher=str(given["publisher"]), role=str(given["role"]),
                    url=given.get("url") or None, doi=given.get("doi") or None,
                    page=page if page not in ("", "null", None) else None,
                    date=str(given["date"]) if given.get("date") else None,
                    notes=given.get("notes"))


# -- workloads ------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkloadSpec:
    """What a row's model is in this test-bed's terms."""

    id: str
    name: str
    mode: str
    group: str
    config: str
    params: dict[str, Any]
    item_unit: str
    overrides: dict[str, Any]
    registered: bool
    cls: Any = None


def _registered() -> dict[str, Any]:
    from bench.workloads import all_workloads

    return all_workloads()


def find_workload(model: str) -> tuple[str | None, str | None]:
    """A model name as printed -> (registered workload, mode from an id like resnet-infer)."""
    registered = _registered()
    text = model.strip()
    for suffix in ("-infer", "-train"):
        if text.lower().endswith(suffix) and text.lower()[: -len(suffix)] in registered:
            return text.lower()[: -len(suffix)], suffix[1:]
    if text.lower() in registered:
        return text.lower(), None
    key = squash(text)
    for name in registered:
        if squash(name) == key:
            return name, None
    return WORKLOAD_ALIASES.get(key), None


def _batch_key(cls: Any, mode: str, params: dict[str, Any]) -> str | None:
    for key in ("batch_size", f"{mode}_batch_size"):
        if key in params:
            return key
    return None


def resolve_workload(row: dict[str, str], defaults: dict[str, Any], where: str,
                     item_from_unit: str | None, precision: str) -> WorkloadSpec:
    model = row.get("workload") or row.get("model") or ""
    if not model:
        raise UserError(f"{where}: no workload named.", "Fill in the workload / model cell.")
    name, id_mode = find_workload(model)
    group = (row.get("group") or defaults.get("group") or "").strip().lower()
    if name is None and (group not in ("cv", "nlp", "llm", "micro") or not item_from_unit):
        known = ", ".join(sorted(_registered()))
        raise UserError(
            f"{where}: {model!r} is not one of this test-bed's workloads ({known}).",
            "Name the matching workload, or import it as a workload of its own: add a "
            "group column (cv, nlp, llm) and give the throughput's unit (images/s, ...).")
    mode_text = (row.get("mode") or id_mode or defaults.get("mode") or "").strip().lower()
    if not mode_text and defaults.get("shape") == "long":
        mode_text = "infer"  # the vendor shape is an inference table
    if mode_text not in MODES:
        raise UserError(f"{where}: mode {mode_text or '(none)'!r} of {model!r} is not known.",
                        "Add a mode column (train or infer), name the workload as "
                        "'resnet-infer', or pass --mode.")
    mode = MODES[mode_text]
    batch = _int(row.get("batch_size"), f"{where}, batch size")
    streams = _int(row.get("streams"), f"{where}, streams")
    if name is None:
        params = {k: v for k, v in (("batch_size", batch), ("streams", streams)) if v}
        slug = re.sub(r"[^a-z0-9.]+", "-", model.lower()).strip("-")
        return WorkloadSpec(f"{slug}-{mode}", model, mode, group, "published", params,
                            item_from_unit, {}, registered=False)
    cls = _registered()[name]
    if mode not in cls.modes:
        raise UserError(f"{where}: workload {name} has no {mode} mode.",
                        f"Use one of: {', '.join(cls.modes)}.")
    config = (row.get("config") or defaults.get("config") or "full").strip()
    if config not in cls.configs:
        raise UserError(f"{where}: workload {name} has no config {config!r}.",
                        f"Use one of: {', '.join(cls.configs)}.")
    params = copy.deepcopy(cls.configs[config])
    overrides: dict[str, Any] = {}
    if batch:
        key = _batch_key(cls, mode, params)
        if key is not None and params[key] != batch:
            params[key] = overrides[key] = batch
        elif key is None and isinstance(params.get("reference_point"), dict) and \
                params["reference_point"].get("batch") != batch:
            params["reference_point"] = {**params["reference_point"], "batch": batch}
            overrides["reference_point"] = params["reference_point"]
    if streams and streams != 1:
        params["streams"] = overrides["streams"] = streams
    # Rows of one model at other batch sizes, stream counts or precisions are other
    # workloads in the report (never averaged together), named by what differs from the
    # config as the suites run it.
    parts = [config]
    if any(k.endswith("batch_size") or k == "reference_point" for k in overrides):
        parts.append(f"batch {batch}")
    if "streams" in overrides:
        parts.append(f"{streams} streams")
    if precision != cls.default_precision:
        parts.append(precision)
    return WorkloadSpec(f"{name}-{mode}", name, mode, cls.group, ", ".join(parts), params,
                        cls.item_unit,
                        overrides, registered=True, cls=cls)


def _int(text: Any, where: str) -> int | None:
    if text is None or str(text).strip() == "":
        return None
    try:
        value = float(str(text).strip())
    except ValueError:
        value = math.nan
    if not value.is_integer() or value < 1:
        raise UserError(f"{where}: {text!r} is not a positive whole number.",
                        "Write e.g. 64.")
    return int(value)


# -- FLOPs per item --------------------------------------------------------------------------
ELEMENT_BYTES = {"fp32": 4, "tf32": 4, "fp16": 2, "bf16": 2, "int8": 1, "fp8": 1, "int4": 0.5}


# A count depends only on the model, mode, parameters and precision: made once per process.
_COUNTS: dict[str, Any] = {}


def flop_count(wl: WorkloadSpec, precision: str) -> Any:
    """``bench.flops.count_work`` of a registered workload at the row's shape."""
    from bench.flops import count_work

    key = json.dumps([wl.name, wl.mode, wl.params, precision], sort_keys=True, default=str)
    if key not in _COUNTS:
        probe_precision = precision if precision in ELEMENT_BYTES else "unknown"
        _COUNTS[key] = count_work(
            lambda: wl.cls.work_probe(wl.mode, wl.params, probe_precision, {}))
    return _COUNTS[key]


def derived_cells(metrics: dict[str, dict[str, Any]], wl: WorkloadSpec, precision: str,
                  spec: dict[str, Any] | None, count: int) -> None:
    """FLOPs per item (counted), FLOP/s and MFU from the published throughput; items/J from
    throughput and power where the table gives no efficiency of its own."""
    thr = metrics.get("throughput_items_per_s", {}).get("value")
    unit = f"FLOP/{wl.item_unit}"
    fpi = metrics.get("flop_per_item", {}).get("value")
    if fpi is None and wl.registered:
        counted = flop_count(wl, precision)
        if counted is not None and counted.flop_per_item is not None:
            fpi = counted.flop_per_item
            metrics["flop_per_item"] = {"value": fpi, "unit": unit, "status": "derived",
                                        "method": counted.method}
            if counted.bytes_per_item is not None:
                metrics["bytes_per_item"] = {
                    "value": counted.bytes_per_item, "unit": f"B/{wl.item_unit}",
                    "status": "derived",
                    "method": "least memory traffic: every weight read once per step"}
    if fpi is not None and thr is not None:
        metrics["flop_per_s"] = {"value": thr * fpi, "unit": "FLOP/s", "status": "derived",
                                 "definition": "throughput_items_per_s x flop_per_item"}
        from testbed.report.checks import peak_for

        peak, which = peak_for(spec, precision)
        if peak:
            metrics["mfu_pct"] = {"value": 100 * thr * fpi / (peak * count), "unit": "%",
                                  "status": "derived",
                                  "definition": f"flop_per_s / ({which} x {count})"}
    power = metrics.get("power_w_mean", {}).get("value")
    if thr is not None and power and metrics.get("items_per_j", {}).get("status") in (
            None, "empty"):
        metrics["items_per_j"] = {"value": thr / power, "unit": f"{wl.item_unit}/J",
                                  "status": "derived",
                                  "definition": "throughput_items_per_s / power_w_mean"}


# -- reading tables --------------------------------------------------------------------------
@dataclass
class Table:
    rows: list[dict[str, Any]]  # header -> cell text
    headers: list[str]
    source: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)


def read_table(path: Path) -> Table:
    """A CSV file, or a YAML file with ``rows:`` (and ``source:``, ``defaults:``)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise UserError(f"Table {path} cannot be read: {exc.strerror or exc}.",
                        "Give an existing CSV or YAML file.") from exc
    except UnicodeDecodeError as exc:
        raise UserError(f"Table {path} is not UTF-8 text: {exc}.",
                        "Save it as UTF-8 CSV or YAML.") from exc
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UserError(f"Table {path} is not valid YAML: {exc}.",
                            "Fix the syntax at the line shown.") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list) or not all(
                isinstance(r, dict) for r in doc["rows"]):
            raise UserError(f"Table {path} has no 'rows:' list of mappings.",
                            "Write rows: [{device: ..., workload: ..., 'throughput "
                            "[images/s]': ...}, ...] (docs/report.md shows one).")
        headers = list(dict.fromkeys(str(k) for r in doc["rows"] for k in r))
        rows = [{str(k): v for k, v in r.items()} for r in doc["rows"]]
        source = doc.get("source") or {}
        defaults = doc.get("defaults") or {}
        if not isinstance(source, dict) or not isinstance(defaults, dict):
            raise UserError(f"Table {path}: 'source' and 'defaults' must be mappings.",
                            "Write source: {title: ..., url: ..., table: ..., page: ...}.")
        return Table(rows, headers, source, defaults)
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise UserError(f"Table {path} is empty.", "Give a header row and data rows.")
    headers = [h for h in reader.fieldnames if h is not None]
    rows = []
    for i, row in enumerate(reader, start=1):
        if None in row:
            raise UserError(f"Table {path}, row {i}: more cells than headers.",
                            "Quote cells that contain commas.")
        if any((v or "").strip() for v in row.values()):
            rows.append(row)
    return Table(rows, headers)


# -- documents -------------------------------------------------------------------------------
@dataclass
class Imported:
    out: Path
    files: list[Path]
    statuses: dict[str, int]
    notes: list[str]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "table"


def build_documents(path: Path, source: dict[str, Any], options: dict[str, Any],
                    now: datetime | None = None,
                    progress: Callable[[str], None] = lambda _m: None) -> list[dict[str, Any]]:
    """The documents of every row of the table at ``path`` (not written); ``progress`` hears
    of each row (counting a model's FLOPs the first time takes seconds)."""
    table = read_table(path)
    where = f"Table {path}"
    if len(table.rows) > MAX_ROWS:
        raise UserError(f"{where} has {len(table.rows)} data rows, more than the {MAX_ROWS} "
                        "one import takes.", "Split the table (a published table has dozens).")
    cite = citation({**table.source, **{k: v for k, v in source.items() if v is not None}},
                    where)
    cols = layout(table.headers, where)
    defaults = {**table.defaults, **{k: v for k, v in options.items() if v is not None},
                "shape": cols.shape}
    file_sha = hashlib.sha256(path.read_bytes()).hexdigest()
    stamp = (now or datetime.now(tz=timezone.utc)).isoformat(timespec="seconds")
    docs = []
    if not table.rows:
        raise UserError(f"{where} has no data rows.", "Add the published figures.")
    for i, raw in enumerate(table.rows, start=1):
        at = f"{where}, row {i}"
        row = {key: raw.get(header) for key, header in cols.ids.items()}
        row = {k: (None if v is None else str(v).strip()) for k, v in row.items()}
        device_name = row.get("device") or defaults.get("device")
        if not device_name:
            raise UserError(f"{at}: no device.",
                            "Add a device column, or pass --device for a one-device table.")
        spec = find_spec(device_name)
        count = _int(row.get("count"), f"{at}, count") or \
            _int(defaults.get("count"), "--count") or 1
        unit_column = row.get("unit") or ""
        units: dict[str, Unit] = {}
        for col in cols.metrics:
            text = col.unit_text or (unit_column if col.metric == "throughput_items_per_s"
                                     else "")
            unit = parse_unit(col.kind, text) if text else None
            if unit is None and (str(raw.get(col.header) or "").strip().lower()
                                 not in ("", *NOT_RUN, "oom", "unsupported")):
                raise UserError(f"{at}: column {col.header!r} has "
                                + (f"unit {text!r}, which is not a {col.kind} unit" if text
                                   else "no unit") + ".",
                                "Write the unit in the header, e.g. 'throughput [images/s]', "
                                "'latency [ms]', 'power [W]', 'efficiency [images/J]'.")
            if unit is not None:
                units[col.header] = unit
        item = next((u.item for u in units.values() if u.item and u.item not in GENERIC_ITEMS),
                    None)
        precision_text = (row.get("precision") or defaults.get("precision") or "").lower()
        if precision_text not in PRECISIONS:
            raise UserError(f"{at}: precision {precision_text or '(none)'!r} is not known.",
                            f"Add a precision column or pass --precision (one of "
                            f"{', '.join(sorted(set(PRECISIONS.values())))}).")
        precision = PRECISIONS[precision_text]
        wl = resolve_workload(row, defaults, at, item, precision)
        metrics: dict[str, dict[str, Any]] = {}
        for col in cols.metrics:
            unit = units.get(col.header)
            cell = parse_cell(raw.get(col.header), unit, f"{at}, column {col.header!r}")
            metric = col.metric
            if metric == "memory":
                metric = "device_mem_used_pct_mean" if unit and unit.si == "%" else \
                    "device_mem_used_bytes_peak"
            si = unit.si if unit else "?"
            if unit and unit.item:
                if unit.item not in (wl.item_unit, *GENERIC_ITEMS):
                    raise UserError(
                        f"{at}: column {col.header!r} counts {unit.item}, but one item of "
                        f"{wl.name} is one of its {wl.item_unit}.",
                        f"Write the unit in {wl.item_unit}, or name the matching workload.")
                si = si.replace(unit.item, wl.item_unit).replace("item", wl.item_unit)
            elif si == "FLOP/item":
                si = f"FLOP/{wl.item_unit}"
            if si == "?":
                si = {"throughput_items_per_s": f"{wl.item_unit}/s",
                      "items_per_j": f"{wl.item_unit}/J"}.get(metric, "?")
            if metric in metrics:
                raise UserError(f"{at}: two columns give {metric}.", "Keep one of them.")
            printed = "" if raw.get(col.header) is None else str(raw.get(col.header)).strip()
            metrics[metric] = {**cell, "unit": si, "column": col.header,
                               "as_published": f"{printed} {col.unit_text or unit_column}"
                               .strip() or "(blank)"}
        derived_cells(metrics, wl, precision, spec, count)
        statuses = {m["status"] for m in metrics.values()}
        status = "ok" if statuses & {"published"} else next(
            (s for s in ("oom", "unsupported") if s in statuses), "not_run")
        info: dict[str, Any] = {"model": (row.get("workload") or row.get("model") or ""),
                                "registered": wl.registered}
        if row.get("framework"):
            info["framework"] = row["framework"]
        extra = {h: str(raw.get(h)) for h in cols.extra if raw.get(h) not in (None, "")}
        if extra:
            info["columns"] = extra
        device: dict[str, Any] = {"name": device_name, "vendor": spec["vendor"] if spec else None,
                                  "count": count, "spec": spec["id"] if spec else None}
        if row.get("system"):
            device["system"] = row["system"]
        if row.get("label") or defaults.get("label"):
            device["label"] = row.get("label") or defaults["label"]
        doc = {
            "schema_version": SCHEMA_VERSION, "kind": KIND, "source": cite.as_dict(),
            "import": {"file": str(path), "file_sha256": file_sha, "row": i,
                       "shape": cols.shape, "imported_at": stamp,
                       "bench_version": __version__},
            "device": device,
            "workload": {"id": wl.id, "name": wl.name, "mode": wl.mode, "group": wl.group,
                         "config": wl.config, "params": wl.params, "item_unit": wl.item_unit,
                         "precision_requested": precision, "precision_used": precision,
                         "precision_reason": None, "overrides": wl.overrides, "info": info},
            "status": status,
            "error": None if status in ("ok", "not_run") else {
                "type": "Published", "message": f"the table says {status}"},
            "metrics": metrics,
        }
        doc = seal(sanitize(doc))
        problems = validation_errors(doc, "published")
        if problems:
            raise UserError(f"{at} makes an invalid document: {problems[0]}.",
                            "Fix that cell or column (schemas/published.schema.json).")
        docs.append(doc)
        progress(f"row {i}/{len(table.rows)}: {device_name} · {wl.id} ({status})")
    return docs


def import_table(path: Path, out: Path | None, source: dict[str, Any],
                 options: dict[str, Any], root: Path = Path("published"),
                 progress: Callable[[str], None] = lambda _m: None) -> Imported:
    """Import the table at ``path`` into ``out`` (default published/<publisher>-<table>/)."""
    path = Path(path)
    docs = build_documents(path, source, options, progress=progress)
    first = docs[0]["source"]
    target = Path(out) if out else root / _slug(f"{first['publisher']}-{first['table']}")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(f"{target} already exists and is not an empty directory.",
                        "Give another --out, or remove the earlier import first.")
    # Written into a hidden directory beside the target, then renamed into place: an import
    # that is interrupted leaves no half table that a report would read as whole.
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    files, statuses = [], {}
    try:
        for doc in docs:
            name = (f"{doc['import']['row']:03d}-{_slug(doc['device']['name'])}-"
                    f"{doc['workload']['id']}.json")
            atomic_write_json(staging / name, doc)
            files.append(target / name)
            for cell in doc["metrics"].values():
                statuses[cell["status"]] = statuses.get(cell["status"], 0) + 1
        os.chmod(staging, 0o777 & ~_umask())
        if target.exists():
            target.rmdir()  # empty (checked above)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    notes = []
    unmatched = sorted({d["device"]["name"] for d in docs if d["device"]["spec"] is None})
    if unmatched:
        notes.append(f"no spec sheet for {', '.join(unmatched)}: their figures get no physical "
                     "bound (add a sheet under bench/specs/devices)")
    uncounted = sorted({d["workload"]["id"] for d in docs
                        if "flop_per_item" not in d["metrics"]})
    if uncounted:
        notes.append(f"no FLOPs per item for {', '.join(uncounted)} (not one of this "
                     "test-bed's workloads, or no flop_per_item column): their throughput "
                     "has no peak bound")
    return Imported(target, files, statuses, notes)

