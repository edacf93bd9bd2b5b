"""Re-running a submission: its recorded configuration as a suite file, run in its image (or
natively) through the same launcher ``invoke bench`` uses, once as submitted and once with
distinct inputs for the caching check.

The suite is written from the result documents themselves, not looked up by name: every
parameter, precision, run rule, seed, model substitution and telemetry interval is the one the
results record, so a suite file the auditor never saw re-runs exactly. Command-line overrides
of the submission are passed as ``--set`` again, so the re-run is flagged as they were.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bench.config import RULES_PREFIX, format_cpus
from bench.documents import JsonObject, RerunHost, RerunRecord, ResultDoc, RuleChanges
from bench.errors import UserError
from bench.ids import MANIFEST_FILE
from bench.jsonio import atomic_write_text
from testbed.audit.submission import Submission
from testbed.launch.base import RunRequest

SUITE_FILE = "audit-suite.yaml"
# How much slower than its run-queue waits explain a CPU-bound re-run can be made by other
# processes sharing the machine's caches and memory bandwidth, at most, when they keep every
# other CPU busy (docs/audit.md, "Noise"): ResNet inference took 14-17 % more CPU time per
# iteration beside one or two memory-bound processes on the project's 2-core VM, already
# beside other tests; 0.5 leaves room.
CONTENTION = 0.5


@dataclass
class Rerun:
    """One re-run: where its results are and how it ended."""

    name: str  # "as-submitted", "distinct-inputs" or "more-evidence-N"
    out_dir: Path
    exit_code: int | None
    error: str | None
    results: dict[str, ResultDoc]  # entry id -> document
    # The rules it changed per entry (input_variants; more repeats and a longer window for
    # more evidence), and the host's load while it ran (testbed.audit.hostload).
    rules: dict[str, RuleChanges] = field(default_factory=dict)
    host: RerunHost | None = None

    def slowdown(self, entry: str | None = None) -> float:
        """How much the host's load slowed its timed windows (one entry's, or all of them);
        1.0 when not measured."""
        host = self.host or {}
        value = (host.get("entry_slowdown") or {}).get(entry) if entry else host.get("slowdown")
        return float(value or 1.0)

    def contention(self, entry: str | None = None) -> float:
        """The slowdown the run-queue waits do not show: other processes sharing caches and
        memory bandwidth, 1 + CONTENTION x the CPUs the entry's timed windows wanted (at most
        1) x the share of the CPUs other processes kept busy; 1.0 when not measured. A loop
        whose step is a sleep wants no CPU and gets about 1."""
        host = self.host or {}
        other, cpus = host.get("other_cpus_mean"), host.get("cpus")
        demand = host.get("entry_cpu_demand") or {}
        wanted = demand.get(entry) if entry else max(
            (v for v in demand.values() if v is not None), default=None)
        if other is None or not cpus or wanted is None:
            return 1.0
        return 1.0 + CONTENTION * min(1.0, wanted) * min(1.0, other / cpus)

    def load_factor(self, entry: str | None = None) -> float:
        """How much the host's load could have slowed the entry's timed windows (or all of
        them): the measured slowdown times the contention it does not show."""
        return self.slowdown(entry) * self.contention(entry)

    def as_dict(self) -> RerunRecord:
        cv = {e: ((d.get("metrics") or {}).get("throughput_items_per_s") or {}).get("cv")
              for e, d in self.results.items()}
        host = None if self.host is None else {
            **self.host, "entry_load_factor": {e: self.load_factor(e) for e in self.results},
            "contention_per_cpu_share": CONTENTION}
        return {"name": self.name, "dir": str(self.out_dir), "exit_code": self.exit_code,
                "error": self.error, "results": sorted(self.results), "rules": self.rules,
                "throughput_cv": cv, "host": host}


def entry_from_result(doc: ResultDoc,
                      rules_extra: RuleChanges | None = None) -> JsonObject:
    """The suite entry that reproduces one result (params changed from the command line
    are left to ``--set``)."""
    w = doc["workload"]
    substitution = (w.get("info") or {}).get("substitution")
    overrides = {k: v for k, v in (w.get("overrides") or {}).items() if k != "workload"}
    params = {k: v for k, v in w["params"].items() if k not in overrides}
    entry = {"id": w["id"], "workload": substitution["requested"] if substitution else w["name"],
             "mode": w["mode"], "config": w["config"], "precision": w["precision_requested"],
             "params": params, "rules": {**doc["rules"], **(rules_extra or {})}}
    if (w.get("compile") or {}).get("requested") and "compile" not in overrides:
        entry["compile"] = True
    # The same device: the threads and CPUs the submission asked for (None: left as found).
    asked = (((doc.get("provenance") or {}).get("device_settings") or {}).get("requested")
             or {})
    device = {k: v for k, v in asked.items() if v is not None}
    if device.get("cpus"):
        device["cpus"] = format_cpus(device["cpus"])
    if device:
        entry["device"] = device
    scenario = doc.get("scenario")
    if scenario:
        # The resolved rules as recorded: the re-run resolves them to the same values.
        entry["scenario"] = scenario["name"]
        entry["scenario_rules"] = {k: v for k, v in scenario["rules"].items()
                                   if k not in ("scenario", "mlperf_model")}
    return entry


def suite_from_results(sub: Submission, entries: list[str],
                       rules_extra: dict[str, RuleChanges] | None = None) -> JsonObject:
    docs = [sub.results[e] for e in entries]
    first = docs[0]
    interval = (first["telemetry"].get("interval") or {}).get("requested_s") or 0.1
    idle = ((sub.manifest or {}).get("idle") or {}).get("duration_s") or 1.0
    substitutions = []
    for doc in docs:
        sub_info = (doc["workload"].get("info") or {}).get("substitution")
        if sub_info and not any(s["workload"] == sub_info["requested"] for s in substitutions):
            substitutions.append({"workload": sub_info["requested"], "use": sub_info["used"],
                                  "vendors": [sub_info["vendor"]],
                                  "reason": sub_info.get("reason", "recorded in the result")})
    suite: JsonObject = {
        "name": first["suite"]["name"],
        "description": f"audit re-run of {sub.run_id or sub.run_dir}",
        "seed": first["suite"]["seed"],
        "telemetry": {"interval_s": interval, "idle_s": round(float(idle), 3)},
        "entries": [entry_from_result(d, (rules_extra or {}).get(d["workload"]["id"]))
                    for d in docs],
    }
    if substitutions:
        suite["options"] = {"substitutions": substitutions}
    return suite


def overrides_of(sub: Submission, entries: list[str],
                 rules_extra: dict[str, RuleChanges] | None = None) -> list[str]:
    """The submission's ``--set`` arguments (JSON values are YAML, as ``--set`` reads them).

    A run rule the submission overrode is set again (so the re-run is flagged as it was) to
    the value the re-run's suite gives it: the audit's own rules for a re-run (more repeats,
    a longer window, distinct inputs) win over the submitted value."""
    out = []
    for entry_id in entries:
        extra = (rules_extra or {}).get(entry_id) or {}
        for key, value in (sub.results[entry_id]["workload"].get("overrides") or {}).items():
            if key == "workload":
                continue
            if key.startswith(RULES_PREFIX):
                value = extra.get(key[len(RULES_PREFIX):], value)
            out.append(f"{entry_id}.{key}={json.dumps(value)}")
    return out


def write_suite(path: Path, suite: JsonObject) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "# Written by `invoke audit` from the submitted results.\n"
                      + yaml.safe_dump(suite, sort_keys=False))
    return path


def read_results(out_dir: Path) -> dict[str, ResultDoc]:
    """The re-run's valid result documents by entry id (what the submitted image wrote is
    read as carefully as the submission: inside the directory, schema and hash checked)."""
    from bench.validate import validate_file

    out = {}
    for path in sorted(out_dir.glob("*.json")):
        if path.name == MANIFEST_FILE:
            continue
        report = validate_file(path, out_dir)
        if report.ok and report.schema == "result":
            out[report.doc["workload"]["id"]] = report.doc
    return out


def rerun_unavailable(vendor: str, native: bool) -> str | None:
    """Why this machine cannot re-run a ``vendor`` submission (None: it can).

    Natively: the vendor's backend finds no device. In a container: the host lacks the device
    nodes, the mounts or the container runtime the vendor's spec asks for. Said before any
    re-run, so the verdict is "cannot re-run here", not a failure of the submission."""
    if native:
        from bench.devices import BACKENDS

        if vendor not in BACKENDS:
            return f"unknown vendor {vendor!r}"
        found = BACKENDS[vendor].detect()
        return None if found.available else \
            f"this machine has no usable {vendor} device ({found.reason})"
    import glob

    from testbed.images.containers import passthrough
    from testbed.images.spec import load_spec

    spec = load_spec(vendor)
    pattern = spec.run.get("device_glob")
    if pattern and not glob.glob(pattern):
        return (f"this machine has no {pattern}, so no {vendor} device to pass to the "
                "container")
    try:
        passthrough(spec, None)
    except UserError as exc:
        return exc.what
    runtime = spec.run.get("runtime")
    if runtime:
        from testbed.images.engine import connect

        client = connect()
        try:
            runtimes = (client.info() or {}).get("Runtimes") or {}
        finally:
            client.close()
        if runtime not in runtimes:
            return (f"the Docker engine here has no {runtime!r} runtime (it has "
                    f"{', '.join(sorted(runtimes)) or 'none'})")
    return None


def rerun(launcher: str, suite_file: Path, out_dir: Path, vendor: str,
          overrides: list[str], label: str | None, name: str,
          image_ref: str | None = None) -> Rerun:
    """One re-run through the launcher ``invoke bench`` chooses for such a run
    (``launcher_for``: ``native``, or ``container`` in the submitted image); a refusal is the
    re-run's error (exit code None) and a failure or a rejected result its exit code and error,
    never the audit's end."""
    from bench.runner import new_run_id
    from testbed.launch import launcher_for

    request = RunRequest(suite=str(suite_file), vendor=vendor, out=out_dir,
                         overrides=tuple(overrides), label=label, image=image_ref,
                         run_id=new_run_id(vendor, f"audit-{name}"), name=name,
                         launcher=launcher)
    try:
        outcome = launcher_for(request, results_root=out_dir.parent).launch(request)
        code, error = outcome.exit_code, outcome.error
        if outcome.rejected:
            error = "; ".join([*([error] if error else []), *outcome.rejected])
    except UserError as exc:
        code, error = None, str(exc)
    return Rerun(name, out_dir, code, error, read_results(out_dir))
