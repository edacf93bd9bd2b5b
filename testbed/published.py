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

The headers, units and words a table may use are data (``published_headers.yaml``, listed
in docs/report.md), so a vendor's ``Latency(msec)`` or ``thread_num`` is read as printed.

**Nothing is invented.** A fact the table does not print (a batch size, the configuration a
row ran at, its concurrent streams) is unknown: ``null`` in the document with the reason in
``workload.unknowns``, never a default. The user may assume one (``--assume config=full``,
``--assume batch_size=64``): the document records it under ``assumptions`` with what it
covers, and the report names it beside the figure and in every check that used it. FLOPs per
item come from the generated model facts (``bench.model_facts``) at a known configuration,
or from a ``flop_per_item`` column; never from a guessed shape.

A cell reading ``--`` (or n/a, not run) is ``not_run``, a blank one ``empty``, OOM /
unsupported say so; anything else that is not a number is refused with the row and column.
Models that are not this test-bed's workloads import as workloads of their own, in the group
of the first ``--other-models`` pattern (or the data file's default patterns) that names them.
"""

from __future__ import annotations

import csv
import fnmatch
import functools
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

import yaml

from bench import __version__
from bench.documents import (
    Assumption,
    Cell,
    DeviceSpec,
    Info,
    JsonObject,
    Params,
    PublishedDevice,
    PublishedDoc,
    PublishedSource,
)
from bench.errors import UserError
from bench.jsonio import atomic_write_json, sanitize, seal
from bench.metrics import unit_of
from bench.model_facts import Work, WorkloadFacts
from bench.model_facts import load as load_model_facts
from bench.schema import validation_errors
from bench.specs import find_spec, peak_for

KIND = "bench.published"
SCHEMA_VERSION = "1.0"
HEADERS_FILE = Path(__file__).resolve().parent / "published_headers.yaml"
# Groups a workload of its own may be imported into (schemas/published.schema.json).
GROUPS = ("cv", "nlp", "llm", "rec", "micro")
# What --assume may assume.
ASSUMABLE = ("config", "batch_size", "streams")
MAX_ROWS = 10_000  # rows of one table (a published table has dozens)


@functools.cache
def vocabulary(path: Path = HEADERS_FILE) -> JsonObject:
    """The headers, units and words of published tables (``published_headers.yaml``)."""
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    for key in ("columns", "metrics", "units", "rates", "items", "generic_items", "not_run",
                "precisions", "modes", "workload_aliases", "other_models"):
        if key not in doc:
            raise UserError(f"{path} lacks its {key!r} section.", "Restore it from git.")
    return doc


_V = vocabulary()
# Identity columns, by their normalised header (lower case, words joined by "_").
ID_COLUMNS: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in _V["columns"].items()}
ALIAS_TO_ID = {alias: key for key, aliases in ID_COLUMNS.items() for alias in aliases}
# Metric columns: header name -> (report metric, kind of unit).
METRICS: dict[str, tuple[str, str]] = {
    header: (metric, spec["kind"]) for metric, spec in _V["metrics"].items()
    for header in spec["headers"]}
ITEMS = {word: item for item, words in _V["items"].items() for word in words}
# Units that count whatever the row's workload counts (a wide table mixes images and
# sequences in one column): the document writes the workload's own item.
GENERIC_ITEMS = tuple(_V["generic_items"])
RATES: dict[str, str] = dict(_V["rates"])
TIME: dict[str, float] = {k: float(v) for k, v in _V["units"]["time"].items()}
POWER: dict[str, float] = {k: float(v) for k, v in _V["units"]["power"].items()}
BYTES: dict[str, float] = {k: float(v) for k, v in _V["units"]["bytes"].items()}
FLOP: dict[str, float] = {k: float(v) for k, v in _V["units"]["flop"].items()}
PERCENT = tuple(_V["units"]["percent"])
NOT_RUN = set(_V["not_run"])
PRECISIONS: dict[str, str] = dict(_V["precisions"])
MODES: dict[str, str] = dict(_V["modes"])
# Other names the publications use for this test-bed's workloads (normalised: lower case,
# letters and digits only).
WORKLOAD_ALIASES: dict[str, str] = dict(_V["workload_aliases"])
OTHER_MODELS: tuple[tuple[str, str], ...] = tuple(
    (pattern, group) for group, patterns in _V["other_models"].items() for pattern in patterns)


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
    word = text.strip().lower()
    return ITEMS.get(word) or ITEMS.get(word.rstrip("s"))


def _rate(text: str) -> Unit | None:
    """``images/s``, ``samples per sec``, ``tokens/ms``, or a whole word (``qps``, ``it/s``)."""
    low = re.sub(r"\s+", " ", text.strip().lower())
    if low.replace(" ", "") in RATES:
        item = RATES[low.replace(" ", "")]
        return Unit(f"{item}/s", item=item)
    m = re.fullmatch(r"([a-z]+) ?(?:/|per) ?([a-zµμ]+)", low)
    item = _item(m.group(1)) if m else None
    if not m or not item or m.group(2) not in TIME:
        return None
    return Unit(f"{item}/s", 1.0 / TIME[m.group(2)], item=item)


def parse_unit(kind: str, text: str) -> Unit | None:
    """The unit ``text`` for a metric of ``kind``; None when it is not one."""
    t = text.strip().replace(" ", "").replace("·", "*")
    low = t.lower()
    if kind == "time":
        return Unit("s", TIME[low]) if low in TIME else None
    if kind == "power":
        return Unit("W", POWER[low]) if low in POWER else None
    if kind == "percent":
        return Unit("%") if low in PERCENT else None
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
        if low in PERCENT:
            return Unit("%")
        return Unit("B", BYTES[low]) if low in BYTES else None
    if kind == "rate":
        return _rate(text)
    if kind == "efficiency":
        m = re.fullmatch(r"\(?([a-z]+)(?:/j|/joule|perj|perjoule|/s\)?/w|/\(s\*w\)|/ws|/s/w|"
                         r"/w\*s|/w/s)", low)
        item = _item(m.group(1)) if m else None
        return Unit(f"{item}/J", item=item) if item else None
    return None


UNIT_EXAMPLES = {
    "time": ", ".join(TIME), "power": ", ".join(POWER), "percent": ", ".join(PERCENT),
    "temperature": "C, °C, F, K", "bytes": ", ".join(BYTES), "flop": ", ".join(FLOP),
    "memory": f"{', '.join(BYTES)} or %",
    "rate": "ITEM/s or ITEM per sec (ITEM: " + ", ".join(sorted(_V["items"])) + "), "
            + ", ".join(RATES),
    "efficiency": "ITEM/J or (ITEM/s)/W",
}


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
        if key in ALIAS_TO_ID and key not in METRICS:  # "Batch size (images)" too
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
                            "efficiency, utilisation, temperature, memory, flop_per_item; "
                            "every header read is listed in docs/report.md) with its unit in "
                            "brackets, e.g. 'throughput [images/s]', or add the header to "
                            "testbed/published_headers.yaml.")
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


def parse_cell(text: Any, unit: Unit | None, where: str) -> Cell:
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

    def as_dict(self) -> PublishedSource:
        out: PublishedSource = {"title": self.title, "table": self.table, "page": self.page,
                               "publisher": self.publisher, "role": self.role}
        for key in ("url", "doi", "date", "notes"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


def citation(given: JsonObject, where: str) -> Citation:
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


# -- assumptions and other models -----------------------------------------------------------
def parse_assumptions(given: Any, how: str) -> dict[str, tuple[Any, str]]:
    """``--assume config=full`` / ``batch_size=64`` / ``streams=1`` (a list of such texts, or
    a mapping from a YAML table's ``assume:``) -> fact -> (value, how it was given)."""
    if given is None:
        return {}
    items = [f"{k}={v}" for k, v in given.items()] if isinstance(given, dict) else \
        [str(g) for g in given]
    out: dict[str, tuple[Any, str]] = {}
    for item in items:
        fact, sep, value = (x.strip() for x in item.partition("="))
        fact = ALIAS_TO_ID.get(norm(fact), norm(fact))
        if not sep or fact not in ASSUMABLE or not value:
            raise UserError(f"{how}: cannot assume {item!r}.",
                            "Write FACT=VALUE with FACT one of " + ", ".join(ASSUMABLE)
                            + ", e.g. --assume config=full or --assume batch_size=64.")
        text = f"{how} {fact}={value}" if how.startswith("--") else f"{how}: {fact}={value}"
        out[fact] = (value if fact == "config" else _int(value, f"{how} {fact}"), text)
    return out


def parse_other_models(given: Any) -> tuple[tuple[str, str], ...]:
    """``--other-models 'resnet*,densenet*=cv'`` (repeatable) -> ((pattern, group), ...)."""
    out = []
    for item in given or []:
        patterns, sep, group = str(item).rpartition("=")
        group = group.strip().lower()
        if not sep or group not in GROUPS or not patterns.strip():
            raise UserError(f"--other-models {item!r} is not PATTERN[,PATTERN...]=GROUP.",
                            "Write e.g. --other-models 'resnet*,densenet*=cv' (groups: "
                            + ", ".join(GROUPS) + "; * matches any text).")
        out += [(p.strip().lower(), group) for p in patterns.split(",") if p.strip()]
    return tuple(out)


def other_model_group(model: str, patterns: tuple[tuple[str, str], ...]) -> str | None:
    """The group of the first pattern (the user's, then the defaults) naming ``model``."""
    name = model.strip().lower()
    return next((g for p, g in (*patterns, *OTHER_MODELS) if fnmatch.fnmatchcase(name, p)),
                None)


# -- workloads ------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkloadSpec:
    """What a row's model is in this test-bed's terms, with what the table left unknown and
    what the user assumed in its place."""

    id: str
    name: str
    mode: str
    group: str
    config: str  # the report's label: the config and what the row changes in it
    params: Params
    item_unit: str
    overrides: Params
    registered: bool
    config_name: str | None = None  # this test-bed's config the row ran at, if known
    work: Work | None = None  # its model facts
    batch: int | None = None
    unknowns: dict[str, str] = field(default_factory=dict)
    assumptions: tuple[Assumption, ...] = ()

    def assumed(self, fact: str) -> str:
        """The assumptions a fact rests on, for a cell's note ("" when none)."""
        return "; ".join(a["given"] for a in self.assumptions if fact in a["covers"])


def _registered() -> dict[str, WorkloadFacts]:
    return load_model_facts()


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


@dataclass(frozen=True)
class Fact:
    """A value of the row, and where it comes from: printed, assumed or the config's."""

    value: Any
    source: str  # "printed", "assumed", "config" (of a printed or assumed config), ""
    given: str = ""  # how an assumption was given


def _fact(printed: Any, assume: dict[str, tuple[Any, str]], name: str) -> Fact:
    if printed not in (None, ""):
        return Fact(printed, "printed")
    if name in assume:
        return Fact(assume[name][0], "assumed", assume[name][1])
    return Fact(None, "")


def _set_batch(params: Params, key: str | None, batch: int) -> Params:
    """``params`` with the batch at ``key`` (``reference_point.batch``: nested); what changed."""
    if key is None:
        return {}
    if key == "reference_point.batch":
        if params["reference_point"].get("batch") == batch:
            return {}
        params["reference_point"] = {**params["reference_point"], "batch": batch}
        return {"reference_point": params["reference_point"]}
    if params.get(key) == batch:
        return {}
    params[key] = batch
    return {key: batch}


def resolve_workload(row: JsonObject, defaults: JsonObject,
                     assume: dict[str, tuple[Any, str]],
                     other_models: tuple[tuple[str, str], ...], where: str,
                     item_from_unit: str | None, precision: str) -> WorkloadSpec:
    model = row.get("workload") or row.get("model") or ""
    if not model:
        raise UserError(f"{where}: no workload named.", "Fill in the workload / model cell.")
    name, id_mode = find_workload(model)
    facts = _registered().get(name) if name else None
    group = (row.get("group") or defaults.get("group") or "").strip().lower()
    if facts is None:
        group = group or other_model_group(model, other_models) or ""
        if group not in GROUPS:
            known = ", ".join(sorted(_registered()))
            raise UserError(
                f"{where}: {model!r} is not one of this test-bed's workloads ({known}), and "
                + (f"its group {group!r} is none of {', '.join(GROUPS)}." if group else
                   "no --other-models pattern gives its group."),
                f"Import it as a workload of its own with --other-models "
                f"'{model.strip().lower()}*=cv' (groups: {', '.join(GROUPS)}) or a group "
                "column, or name the matching workload.")
    mode_text = (row.get("mode") or id_mode or defaults.get("mode") or "").strip().lower()
    if not mode_text and facts is not None and len(facts.modes) == 1:
        mode_text = facts.modes[0]  # the only mode the workload has
    if not mode_text and defaults.get("shape") == "long":
        mode_text = "infer"  # the vendor shape is an inference table
    if mode_text not in MODES:
        raise UserError(f"{where}: mode {mode_text or '(none)'!r} of {model!r} is not known.",
                        "Add a mode column (train or infer), name the workload as "
                        "'resnet-infer', or pass --mode.")
    mode = MODES[mode_text]
    printed_batch = _int(row.get("batch_size") or defaults.get("batch_size"),
                         f"{where}, batch size")
    printed_streams = _int(row.get("streams") or defaults.get("streams"), f"{where}, streams")
    batch = _fact(printed_batch, assume, "batch_size")
    streams = _fact(printed_streams, assume, "streams")
    config = _fact(row.get("config") or defaults.get("config"), assume, "config") \
        if facts is not None else Fact(None, "")
    unknowns: dict[str, str] = {}
    overrides: Params = {}
    work = None
    if facts is not None:
        if mode not in facts.modes:
            raise UserError(f"{where}: workload {name} has no {mode} mode.",
                            f"Use one of: {', '.join(facts.modes)}.")
        if config.value is not None and str(config.value) not in facts.configs:
            raise UserError(f"{where}: workload {name} has no config {config.value!r}"
                            + (f" ({config.given})" if config.given else "") + ".",
                            f"Use one of: {', '.join(facts.configs)}.")
    if facts is not None and config.value is not None:
        config_name = str(config.value)
        params = json.loads(json.dumps(facts.configs[config_name]))
        work = facts.work_at(config_name, mode)
        key = facts.batch_key(mode)
        if batch.value is None and work is not None and work.batch is not None:
            batch = Fact(work.batch, "config")
        if streams.value is None:
            streams = Fact(params.get("streams", 1), "config")
        if batch.value is not None:
            overrides.update(_set_batch(params, key, batch.value))
        if streams.value != params.get("streams", 1):
            params["streams"] = overrides["streams"] = streams.value
    else:
        config_name = None
        params = {"batch_size": batch.value}
        if streams.value is not None:
            params["streams"] = streams.value
        if facts is not None:
            unknowns["config"] = "not published"
    if batch.value is None:
        unknowns["batch_size"] = "not published"
    if streams.value is None:
        unknowns["streams"] = "not published"
    # What each assumption covers: the facts of the row that rest on it.
    assumptions = []
    if config.source == "assumed":
        covers = ["config", "flop_per_item", "bytes_per_item"]
        covers += [f for f, v in (("batch_size", batch), ("streams", streams))
                   if v.source == "config"]
        assumptions.append({"fact": "config", "value": config_name, "given": config.given,
                            "covers": covers})
    for fact, v in (("batch_size", batch), ("streams", streams)):
        if v.source == "assumed":
            assumptions.append({"fact": fact, "value": v.value, "given": v.given,
                                "covers": [fact, *(["bytes_per_item"] if fact == "batch_size"
                                                   else [])]})
    # Rows of one model at other batch sizes, stream counts or precisions are other
    # workloads in the report (never averaged together), named by what they print and
    # assume, and by what differs from the config as the suites run it.
    def part(text: str, fact: Fact) -> str:
        return text + (" (assumed)" if fact.source == "assumed" else "")

    if facts is None:
        parts = ["published"]
    elif config_name is None:
        parts = ["config not published"]
    else:
        parts = [part(config_name, config)]
    if batch.value is not None and (config_name is None or batch.source == "assumed" or any(
            k.endswith("batch_size") or k == "reference_point" for k in overrides)):
        parts.append(part(f"batch {batch.value}", batch))
    if streams.value is not None and (streams.value != 1 or streams.source == "assumed") and \
            (config_name is None or "streams" in overrides or streams.source == "assumed"):
        parts.append(part(f"{streams.value} stream" + ("s" if streams.value != 1 else ""),
                          streams))
    if facts is None or precision != facts.default_precision:
        parts.append(precision)
    if facts is None:
        slug = re.sub(r"[^a-z0-9.]+", "-", model.lower()).strip("-")
        return WorkloadSpec(f"{slug}-{mode}", model.strip(), mode, group, ", ".join(parts),
                            params, item_from_unit or "items", {}, registered=False,
                            batch=batch.value, unknowns=unknowns,
                            assumptions=tuple(assumptions))
    return WorkloadSpec(f"{name}-{mode}", str(name), mode, facts.group, ", ".join(parts),
                        params, facts.item_unit, overrides, registered=True,
                        config_name=config_name, work=work, batch=batch.value,
                        unknowns=unknowns, assumptions=tuple(assumptions))


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
def derived_cells(metrics: dict[str, Cell], wl: WorkloadSpec, precision: str,
                  spec: DeviceSpec | None, count: int) -> None:
    """FLOPs per item (from the model facts at the row's config), FLOP/s and MFU from the
    published throughput; items/J from throughput and power where the table gives no
    efficiency of its own. Nothing is derived from a fact the table does not print unless
    the user assumed it, and then the cell says so."""
    thr = metrics.get("throughput_items_per_s", {}).get("value")
    unit = unit_of("flop_per_item", wl.item_unit)
    fpi = metrics.get("flop_per_item", {}).get("value")
    work = wl.work
    if fpi is None and work is not None and work.flop_per_item is not None:
        fpi = work.flop_per_item
        at = f"{wl.name} {wl.config_name} {wl.mode}"
        if wl.batch is not None and work.batch is not None and wl.batch != work.batch:
            at += f" (counted at batch {work.batch}; per item the same at batch {wl.batch})"
        cell = {"value": fpi, "unit": unit, "status": "derived",
                "method": f"model facts of {at} (bench/specs/model_facts.json): {work.method}"}
        if wl.assumed("flop_per_item"):
            cell["assumed"] = wl.assumed("flop_per_item")
        metrics["flop_per_item"] = cell
    bpi = work.bytes_per_item(precision, wl.batch) if work is not None else None
    if bpi is not None:
        cell = {"value": bpi, "unit": unit_of("bytes_per_item", wl.item_unit), "status": "derived",
                "method": f"least memory traffic: the {work.weights_per_step} weights a "  # type: ignore[union-attr]
                          f"decode step reads, in {precision}, once for the batch of "
                          f"{wl.batch}"}
        if wl.assumed("bytes_per_item"):
            cell["assumed"] = wl.assumed("bytes_per_item")
        metrics["bytes_per_item"] = cell
    if fpi is not None and thr is not None:
        metrics["flop_per_s"] = {"value": thr * fpi, "unit": unit_of("flop_per_s"),
                                 "status": "derived",
                                 "definition": "throughput_items_per_s x flop_per_item"}
        peak, which = peak_for(spec, precision)
        if peak:
            metrics["mfu_pct"] = {"value": 100 * thr * fpi / (peak * count),
                                  "unit": unit_of("mfu_pct"),
                                  "status": "derived",
                                  "definition": f"flop_per_s / ({which} x {count})"}
        if "assumed" in metrics.get("flop_per_item", {}):
            for name in ("flop_per_s", "mfu_pct"):
                if name in metrics:
                    metrics[name]["assumed"] = metrics["flop_per_item"]["assumed"]
    power = metrics.get("power_w_mean", {}).get("value")
    if thr is not None and power and metrics.get("items_per_j", {}).get("status") in (
            None, "empty"):
        metrics["items_per_j"] = {"value": thr / power,
                                  "unit": unit_of("items_per_j", wl.item_unit),
                                  "status": "derived",
                                  "definition": "throughput_items_per_s / power_w_mean"}


# -- reading tables --------------------------------------------------------------------------
@dataclass
class Table:
    rows: list[JsonObject]  # header -> cell text
    headers: list[str]
    source: JsonObject = field(default_factory=dict)
    defaults: JsonObject = field(default_factory=dict)


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


def build_documents(path: Path, source: JsonObject, options: JsonObject,
                    now: datetime | None = None,
                    progress: Callable[[str], None] = lambda _m: None) -> list[PublishedDoc]:
    """The documents of every row of the table at ``path`` (not written); ``progress`` hears
    of each row.

    ``options``: what the user says of every row that does not say it (``device``,
    ``count``, ``mode``, ``precision``, ``label``), ``assume`` (``["config=full",
    "batch_size=64"]``: recorded as assumptions) and ``other_models`` (``["resnet*=cv"]``).
    """
    options = dict(options)
    assume = parse_assumptions(options.pop("assume", None), "--assume")
    other_models = parse_other_models(options.pop("other_models", None))
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
                                f"Write a {col.kind} unit in the header ("
                                f"{UNIT_EXAMPLES.get(col.kind, '')}), e.g. 'throughput "
                                "[images/s]', 'latency [ms]', 'power [W]', 'efficiency "
                                "[images/J]'; docs/report.md lists every unit read.")
            if unit is not None:
                units[col.header] = unit
        # the item a row counts: a specific one (images) before a generic one (samples)
        counted = [u.item for u in units.values() if u.item and u.item != "iterations"]
        item = next((i for i in counted if i not in GENERIC_ITEMS), None) or \
            next(iter(counted), None)
        precision_text = (row.get("precision") or defaults.get("precision") or "").lower()
        if precision_text not in PRECISIONS:
            raise UserError(f"{at}: precision {precision_text or '(none)'!r} is not known.",
                            f"Add a precision column or pass --precision (one of "
                            f"{', '.join(sorted(set(PRECISIONS.values())))}).")
        precision = PRECISIONS[precision_text]
        wl = resolve_workload(row, defaults, assume, other_models, at, item, precision)
        metrics: dict[str, Cell] = {}
        for col in cols.metrics:
            unit = units.get(col.header)
            cell = parse_cell(raw.get(col.header), unit, f"{at}, column {col.header!r}")
            metric = col.metric
            if metric == "memory":
                metric = "device_mem_used_pct_mean" if unit and unit.si == "%" else \
                    "device_mem_used_bytes_peak"
            si = unit.si if unit else "?"
            if unit and unit.item == "iterations" and cell["value"] is not None:
                # iterations (batches) per second: x the row's batch makes items per second
                if wl.batch is None:
                    raise UserError(
                        f"{at}: column {col.header!r} counts iterations (batches), and the "
                        "row prints no batch size to make items of them.",
                        "Add a batch size column, or --assume batch_size=N.")
                cell["value"] *= wl.batch
                cell["reason"] = (f"printed in iterations/s: x the batch of {wl.batch} items"
                                  + (f" ({wl.assumed('batch_size')})"
                                     if wl.assumed("batch_size") else ""))
                if wl.assumed("batch_size"):
                    cell["assumed"] = wl.assumed("batch_size")
                si = f"{wl.item_unit}/s"
            elif unit and unit.item:
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
        info: Info = {"model": (row.get("workload") or row.get("model") or ""),
                                "registered": wl.registered}
        if row.get("framework"):
            info["framework"] = row["framework"]
        extra = {h: str(raw.get(h)) for h in cols.extra if raw.get(h) not in (None, "")}
        if extra:
            info["columns"] = extra
        device: PublishedDevice = {"name": device_name, "vendor": spec["vendor"] if spec else None,
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
                         "precision_reason": None, "overrides": wl.overrides,
                         "unknowns": wl.unknowns, "info": info},
            "assumptions": list(wl.assumptions),
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


def import_table(path: Path, out: Path | None, source: JsonObject,
                 options: JsonObject, root: Path = Path("published"),
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
                     "test-bed's workloads, or its configuration not published: a config or "
                     "flop_per_item column, or --assume config=NAME, gives it): their "
                     "throughput has no peak bound")
    assumed = sorted({a["given"] for d in docs for a in d.get("assumptions") or []})
    if assumed:
        notes.append(f"assumed, not printed: {'; '.join(assumed)} (recorded in each document "
                     "that uses it, and named by the report)")
    unused = [given for _value, given in parse_assumptions(options.get("assume"),
                                                           "--assume").values()
              if given not in assumed]
    if unused:
        notes.append(f"{'; '.join(unused)} applies to no row: each prints it, or is not one "
                     "of this test-bed's workloads (a config)")
    return Imported(target, files, statuses, notes)

