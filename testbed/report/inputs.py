"""Loading result documents for a report: schema first, then who measured what on which device.

Every file is validated (schema, then the document's own sha256) before anything else reads
it. An invalid file is kept in the report's list of invalid files with the reason, never
silently dropped; a file that cannot be read safely (a FIFO, a symlink out of its run
directory, an oversized or malformed document: see ``bench.jsonio.read_json_file``) is such
an invalid file too, and never takes the other files with it.

Runs. Every valid manifest is kept with its state, so the report can say which runs did not
finish (still running, killed, interrupted or failed): their results are complete documents
each, but the run is not.

Device identity. Results from differently configured runs must stay apart even on the same
hardware (the cpu device with 1 and with 2 threads are two "devices"), while repeated runs of
one configuration must merge. The identity is derived from the provenance every result
carries: vendor, device name, device count, torch threads (cpu only: the threads are the
device's size there, and so are the CPUs it was pinned to with ``--cpus``), the image (tag and
digest) when containerised, the torch build and the driver version, plus the optional run
label (``bench run --label NAME``) for differences the provenance cannot see (a power cap, a
BIOS setting). The label shown is the shortest form that still tells the devices in one report
apart.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bench.documents import (
    AnyResultDoc,
    DeviceSpec,
    ManifestDoc,
    PublishedDoc,
    PublishedWorkload,
    WorkloadSection,
)
from bench.specs import recorded_spec
from bench.validate import FileReport, find_files, validate_file

# Provenance facts that make a device configuration, in the order they are added to the
# shown label when the shorter forms collide.
IDENTITY_FACTS = ("label", "vendor", "name", "count", "threads", "cpus", "image", "node",
                  "torch", "driver", "source")
SHORT_FACTS = ("name", "count", "threads", "cpus", "image", "node")


@dataclass(frozen=True)
class Device:
    """One compared device configuration."""

    key: str
    facts: dict[str, str]
    label: str = ""
    spec: DeviceSpec | None = None

    @property
    def vendor(self) -> str:
        return self.facts["vendor"]

    @property
    def name(self) -> str:
        return self.facts["name"]


@dataclass
class Result:
    path: Path
    doc: AnyResultDoc
    device_key: str

    @property
    def workload(self) -> WorkloadSection | PublishedWorkload:
        return self.doc["workload"]

    @property
    def status(self) -> str:
        return self.doc["status"]


@dataclass
class InvalidFile:
    path: Path
    problems: list[str]


@dataclass(frozen=True)
class RunState:
    """A run directory's manifest: how far the run got."""

    path: Path
    run_id: str
    state: str  # running, finished, interrupted, failed
    done: int  # entries with a result file
    total: int
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.state == "finished"

    def why(self) -> str:
        """What the state means for a reader of the report."""
        meaning = {
            "running": "the manifest still says running: the run is going on, or its process "
                       "was killed before it could finish",
            "interrupted": "stopped by the user",
            "failed": f"stopped by an error: {self.error or 'see the manifest'}",
        }.get(self.state, self.state)
        return f"{meaning}; {self.done} of {self.total} entries have a result"


@dataclass
class ResultSet:
    """Valid results, the invalid files (with reasons) and the devices they came from."""

    results: list[Result] = field(default_factory=list)
    invalid: list[InvalidFile] = field(default_factory=list)
    devices: dict[str, Device] = field(default_factory=dict)
    files: int = 0
    manifests: int = 0
    runs: list[RunState] = field(default_factory=list)

    @property
    def incomplete(self) -> list[RunState]:
        """Runs whose manifest does not say ``finished``."""
        return [r for r in self.runs if not r.finished]


def published_facts(doc: PublishedDoc) -> dict[str, str]:
    """A published row's device: its name, count and the publication (a device a table
    reports is not the one this test-bed measured, even when the model is the same)."""
    dev, src = doc["device"], doc["source"]
    facts = {"vendor": str(dev.get("vendor") or "published"), "name": str(dev["name"]),
             "source": f"{src['title']} ({src['table']})"}
    if dev.get("count", 1) != 1:
        facts["count"] = str(dev["count"])
    count = f" ×{dev['count']}" if dev.get("count", 1) != 1 else ""
    facts["label"] = str(dev.get("label") or
                         f"{_short_name(dev['name'])}{count} · {src['publisher']}, {src['table']}")
    return facts


def identity_facts(doc: AnyResultDoc) -> dict[str, str]:
    """The provenance facts that distinguish one device configuration from another."""
    if doc.get("kind") == "bench.published":
        return published_facts(doc)
    prov = doc["provenance"]
    dev = prov.get("device") or {}
    facts = {"vendor": prov["vendor"], "name": str(dev.get("name") or prov["vendor"])}
    if prov.get("label"):
        facts["label"] = str(prov["label"])
    placement = doc.get("placement") or {}
    if placement.get("per_node"):  # a per-node sweep: each node is shown as its own device
        facts["node"] = str(placement.get("node"))
    count = dev.get("count")
    if isinstance(count, int) and count != 1:
        facts["count"] = str(count)
    if prov["vendor"] == "cpu":
        threads = dev.get("threads") or (prov.get("torch") or {}).get("threads")
        if threads:
            facts["threads"] = str(threads)
        pinned = ((prov.get("device_settings") or {}).get("requested") or {}).get("cpus")
        if pinned:  # pinned to these CPUs (--cpus): another device than a floating run
            from bench.config import format_cpus

            facts["cpus"] = format_cpus(pinned)
    image = prov.get("image") or {}
    if not image.get("native", True):
        facts["image"] = str(image.get("tag") or image.get("digest") or "image")
    facts["torch"] = str((prov.get("torch") or {}).get("version", "?"))
    if dev.get("driver_version"):
        facts["driver"] = str(dev["driver_version"])
    return facts


def device_key(facts: dict[str, str]) -> str:
    return "|".join(f"{k}={facts[k]}" for k in IDENTITY_FACTS if k in facts)


def _short_name(name: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"\((R|TM|r|tm)\)", "", name)).strip()


def _fact_text(key: str, value: str) -> str:
    if key == "label":
        return value
    if key == "count":
        return f"×{value}"
    if key == "threads":
        return f"{value} thread" + ("" if value == "1" else "s")
    if key == "cpus":
        return f"CPUs {value}"
    if key == "name":
        return _short_name(value)
    if key == "image":
        return value.rsplit("/", 1)[-1][:40]
    if key == "node":
        return f"node {value}"
    if key == "source":
        return value[:60]
    return f"{key} {value}"


def _base_label(facts: dict[str, str]) -> tuple[str, list[str]]:
    """The run label alone, else the short facts; with the facts it shows."""
    keys = ["label"] if "label" in facts else [k for k in SHORT_FACTS if k in facts]
    return " · ".join(facts[k] if k == "label" else _fact_text(k, facts[k])
                      for k in keys), keys


def label_devices(devices: Iterable[Device]) -> dict[str, Device]:
    """Give every device the shortest label that no other device in the report shares.

    Devices whose short labels collide get the facts that differ among them appended
    (e.g. the torch build), in the order of ``IDENTITY_FACTS``.
    """
    devices = list(devices)
    base = {d.key: _base_label(d.facts) for d in devices}
    groups: dict[str, list[Device]] = {}
    for d in devices:
        groups.setdefault(base[d.key][0], []).append(d)
    labels: dict[str, str] = {}
    for text, group in groups.items():
        if len(group) == 1:
            labels[group[0].key] = text
            continue
        shown = set(base[group[0].key][1])
        differing = [k for k in IDENTITY_FACTS if k not in shown
                     and len({d.facts.get(k) for d in group}) > 1]
        for d in group:
            extra = [_fact_text(k, d.facts[k]) if k in d.facts else f"no {k}" for k in differing]
            labels[d.key] = " · ".join([text, *extra])
    if len(set(labels.values())) < len(labels):
        labels = {k: f"{v} #{hashlib.sha256(k.encode()).hexdigest()[:6]}"
                  for k, v in labels.items()}
    return {d.key: Device(d.key, d.facts, labels[d.key], d.spec) for d in devices}


def run_state(path: Path, manifest: ManifestDoc) -> RunState:
    entries = manifest["entries"]
    return RunState(path.parent, manifest["run_id"], manifest["state"],
                    sum(1 for e in entries if e.get("file")), len(entries),
                    manifest.get("error"))


def load_results(paths: Iterable[Path]) -> ResultSet:
    """Validate and load every JSON file under ``paths`` (files or run directories)."""
    return collect(validate_file(f.path, f.root) for f in find_files(paths))


def collect(reports: Iterable[FileReport]) -> ResultSet:
    """Sort validated documents into results (by device), manifests and invalid files.

    ``load_results`` feeds it from files; the results store feeds it documents it validated
    when they were added (and whose hash it verified when reading them back)."""
    out = ResultSet()
    found: dict[str, Device] = {}
    for report in reports:
        path = report.path
        out.files += 1
        if report.schema == "manifest" and report.ok:
            out.manifests += 1
            out.runs.append(run_state(path, report.doc))
            continue
        if not report.ok:
            out.invalid.append(InvalidFile(path, [str(p) for p in report.problems]))
            continue
        facts = identity_facts(report.doc)
        key = device_key(facts)
        if key not in found:
            # a published row has no provenance: its device is the name it prints
            device = (report.doc.get("provenance") or {}).get("device") or \
                {"name": facts["name"]}
            found[key] = Device(key, facts, spec=recorded_spec(facts["vendor"], device))
        out.results.append(Result(path, report.doc, key))
    out.devices = label_devices(found.values())
    return out
