"""``invoke bench --slurm``: a suite as one Slurm batch job, followed and gathered into one run.

The run directory (on a filesystem every node shares) is made first; the batch script and the
node script are written into ``slurm/`` (``slurm_script``), the job is submitted with
``sbatch --parsable`` and followed: the scheduler's state from ``scontrol show job`` (there may
be no accounting database, so no ``sacct``), progress from the node results as they land.
When the job ends, for whatever reason, ``gather`` turns the nodes' results into the run's
results (one per entry, a multi-node entry's nodes combined by ``bench.multinode``) and its
manifest, which says what each node contributed and marks every entry the job did not finish
(cancelled, time limit, node failure) with the reason. The scheduler's final record of the job
is kept in ``slurm/job-record.txt``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import __version__
from bench.documents import ManifestDoc, ManifestEntry, ResultDoc
from bench.errors import UserError
from bench.jsonio import atomic_write_json, atomic_write_text
from bench.progress import Display, headline
from testbed.launch.base import Launcher, Plan, Ran, RunRequest, accept_results, settle
from testbed.launch.slurm_script import (
    BATCH_SCRIPT,
    NODE_SCRIPT,
    SLURM_DIR,
    STEPS_LOG,
    SlurmJob,
    StepPlan,
    batch_script,
    node_script,
)

HEARTBEAT_S = 30.0
CONTROLLER_PATIENCE_S = 300.0
PLAN_FILE = "plan.json"
RECORD_FILE = "job-record.txt"
NODES_DIR = "nodes"
MANIFEST = "manifest.json"
# Job states after which nothing more will run (``scontrol show job`` JobState).
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
         "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE")
SCHEDULER_FIX = ("Run `invoke bench --slurm` where `sbatch` and `scontrol ping` work (a login "
                 "node of the cluster, with SLURM_CONF naming its slurm.conf if it is not in "
                 "/etc/slurm). For a two-node test cluster on this machine: "
                 "`scripts/slurm-cluster.sh start` and export the SLURM_CONF it prints.")


def _utc() -> str:
    return datetime.now(tz=timezone.utc).isoformat(timespec="milliseconds")


def _run(argv: list[str], timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s,
                              check=False)
    except FileNotFoundError as exc:
        raise UserError(f"`{argv[0]}` is not installed here (not on PATH).",
                        SCHEDULER_FIX) from exc
    except subprocess.TimeoutExpired as exc:
        raise UserError(f"`{' '.join(argv)}` did not answer within {timeout_s:g} s: the Slurm "
                        "controller is unreachable or overloaded.", SCHEDULER_FIX) from exc


def _message(proc: subprocess.CompletedProcess[str]) -> str:
    """The tool's own words: its first line that says something (not a row of asterisks)."""
    lines = [ln.strip() for ln in (proc.stderr + "\n" + proc.stdout).splitlines()]
    said = [ln for ln in lines if ln.strip("* ")]
    return said[0] if said else f"exit code {proc.returncode}"


def require_scheduler() -> None:
    """Fail early, with the fix, when this machine cannot submit jobs or reach the
    controller: before anything is written."""
    for tool in ("sbatch", "scontrol"):
        if shutil.which(tool) is None:
            raise UserError(f"`{tool}` is not on PATH: this machine cannot submit Slurm jobs "
                            "(the Slurm client tools are missing).", SCHEDULER_FIX)
    proc = _run(["scontrol", "ping"])
    if proc.returncode != 0 or "DOWN" in proc.stdout:
        conf = os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")
        raise UserError(f"The Slurm controller does not answer (`scontrol ping`: "
                        f"{_message(proc)}; configuration {conf}).", SCHEDULER_FIX)


# -- planning ----------------------------------------------------------------------------------
def plan_steps(suite: Any) -> tuple[StepPlan, ...]:
    """One step per entry: multi-rank workloads on every node together, ``per_node`` entries on
    every node separately, everything else once on the first node."""
    from bench.workloads import get_workload

    steps = []
    for entry in suite.entries:
        if get_workload(entry.workload).places_on_every_node(entry.params):
            placement = "multi"
        elif entry.per_node:
            placement = "per_node"
        else:
            placement = "single"
        steps.append(StepPlan(entry.id, placement))
    return tuple(steps)


def write_job(job: SlurmJob, run_dir: Path) -> Path:
    """The batch script, the node script and the plan, in ``slurm/`` of the run directory."""
    slurm = run_dir / SLURM_DIR
    slurm.mkdir(parents=True, exist_ok=True)
    script = slurm / BATCH_SCRIPT
    atomic_write_text(script, batch_script(job))
    atomic_write_text(slurm / NODE_SCRIPT, node_script(job))
    atomic_write_json(slurm / PLAN_FILE, job.to_dict())
    return script


def read_job(run_dir: Path) -> SlurmJob:
    path = run_dir / SLURM_DIR / PLAN_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is missing or unreadable: {exc}.",
                        "Name the run directory of an `invoke bench --slurm` run.") from exc
    try:
        return SlurmJob.from_dict(data)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise UserError(f"{path} is not a Slurm run's plan: {exc}.",
                        "Name the run directory of an `invoke bench --slurm` run.") from exc


# -- the scheduler -----------------------------------------------------------------------------
def submit(script: Path) -> str:
    """``sbatch --parsable``: the job id (a federated cluster appends ``;cluster``)."""
    proc = _run(["sbatch", "--parsable", str(script)], timeout_s=60)
    if proc.returncode != 0:
        raise UserError(f"sbatch refused the job: {_message(proc)}.",
                        "Check --partition, --account, --time and --gres against `sinfo` and "
                        f"your allocation; the script is {script}. " + SCHEDULER_FIX)
    return proc.stdout.strip().split(";")[0]


_FIELD = re.compile(r"(\S+?)=(.*?)(?=\s+\S+?=|$)")


def parse_record(text: str) -> dict[str, str]:
    """``scontrol show job -o`` (one line of KEY=VALUE) as a dict."""
    return {m.group(1): m.group(2).strip() for m in _FIELD.finditer(text.strip())}


@dataclass
class JobState:
    """What the scheduler says about the job now."""

    state: str
    reason: str
    nodes: list[str]
    record: dict[str, str]
    text: str

    @property
    def ended(self) -> bool:
        return self.state.split()[0] in ENDED


def expand_nodes(nodelist: str) -> list[str]:
    if not nodelist or nodelist == "(null)":
        return []
    proc = _run(["scontrol", "show", "hostnames", nodelist])
    return proc.stdout.split() if proc.returncode == 0 else [nodelist]


def job_state(job_id: str) -> JobState | None:
    """The job's record from the controller (None once it has forgotten the job)."""
    proc = _run(["scontrol", "show", "job", "-o", job_id])
    if proc.returncode != 0:
        if "Invalid job id" in proc.stderr:
            return None
        raise UserError(f"`scontrol show job {job_id}` failed: {_message(proc)}.",
                        SCHEDULER_FIX)
    record = parse_record(proc.stdout)
    full = _run(["scontrol", "show", "job", job_id]).stdout
    return JobState(record.get("JobState", "UNKNOWN"), record.get("Reason", ""),
                    expand_nodes(record.get("NodeList", "")), record, full)


def cancel(job_id: str) -> None:
    _run(["scancel", job_id])


# -- progress ----------------------------------------------------------------------------------
def node_results(run_dir: Path, node: str, entry: str) -> tuple[ManifestDoc | None,
                                                               ResultDoc | None]:
    """A node's manifest and result document for one entry (None where not written)."""
    base = run_dir / NODES_DIR / node / entry
    out = []
    for path in (base / MANIFEST, base / f"{entry}.json"):
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            out.append(None)
    return out[0], out[1]


def steps_log(run_dir: Path) -> dict[str, int]:
    """Exit status of every step the batch script finished (entry -> srun's exit code)."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in (run_dir / SLURM_DIR / STEPS_LOG).read_text(encoding="utf-8").splitlines():
            parts = line.split("\t")
            if len(parts) >= 2 and parts[1].lstrip("-").isdigit():
                out[parts[0]] = int(parts[1])
    return out


def follow(job: SlurmJob, job_id: str, run_dir: Path, display: Display,
           poll_s: float = 2.0, on_poll: Callable[[], None] | None = None) -> JobState | None:
    """Follow the job until it ends: its state, and each entry's result as it lands. Ctrl-C
    cancels the job (what finished is kept) and follows it to its end."""
    shown: set[str] = set()
    last: JobState | None = None
    cancelled = False
    started = time.monotonic()
    said: tuple[Any, ...] = ()
    said_at = 0.0
    failures = 0
    while True:
        try:
            try:
                state = job_state(job_id)
                failures = 0
            except UserError as exc:
                # A controller that restarts or is busy for a while must not end the follow.
                failures += 1
                if failures * poll_s > CONTROLLER_PATIENCE_S:
                    raise
                display.status(f"job {job_id}: the controller does not answer ({exc.what}); "
                               "retrying")
                time.sleep(poll_s)
                continue
            if state is not None:
                last = state
            nodes = last.nodes if last else []
            for i, step in enumerate(job.steps, 1):
                if step.entry in shown or not nodes:
                    continue
                targets = nodes[:1] if step.placement == "single" else nodes
                docs = [node_results(run_dir, n, step.entry)[1] for n in targets]
                if all(d is not None for d in docs):
                    shown.add(step.entry)
                    first = docs[0]
                    assert first is not None
                    display.line(f"[{i}/{len(job.steps)}] {step.entry:<20} "
                                 f"{first['status']:<8} {headline(first)}  "
                                 f"({', '.join(targets)})")
            if state is None or state.ended:
                return last
            now = time.monotonic()
            news = (state.state, state.reason, tuple(nodes), len(shown))
            # On a terminal the line is rewritten in place; in a log only changes (and a
            # heartbeat) are written.
            if display.tty or news != said or now - said_at >= HEARTBEAT_S:
                said, said_at = news, now
                why = state.reason if state.reason not in ("None", "") else "running"
                display.status(f"job {job_id} {state.state.lower()} ({why}) on "
                               f"{','.join(nodes) or 'no node yet'}, {len(shown)}/"
                               f"{len(job.steps)} entries done, {now - started:.0f} s")
            if on_poll:
                on_poll()
            time.sleep(poll_s)
        except KeyboardInterrupt:
            if cancelled:
                raise
            cancelled = True
            display.note(f"interrupted: cancelling job {job_id} (scancel); finished results "
                         "are kept")
            cancel(job_id)


# -- gathering ---------------------------------------------------------------------------------
def _not_run_reason(job_id: str, state: JobState | None) -> str:
    if state is None:
        return f"not run: job {job_id} ended before this step (its record is gone)"
    what = {"CANCELLED": "was cancelled (scancel)", "TIMEOUT": "reached its time limit",
            "NODE_FAIL": "lost a node", "PREEMPTED": "was preempted",
            "OUT_OF_MEMORY": "ran out of memory", "FAILED": "failed",
            "BOOT_FAIL": "could not boot its nodes", "DEADLINE": "passed its deadline"}.get(
        state.state.split()[0], f"ended {state.state}")
    reason = f" ({state.reason})" if state.reason not in ("None", "") else ""
    return f"not run: job {job_id} {what}{reason} before this step"


def _entry_outcome(run_dir: Path, job_id: str, step: StepPlan, node: str,
                   state: JobState | None, exits: dict[str, int]) -> tuple[str, str]:
    """Status and why, for an entry whose node wrote no result."""
    manifest, _ = node_results(run_dir, node, step.entry)
    if manifest is not None:
        item = next((e for e in manifest.get("entries", []) if e["id"] == step.entry), {})
        if manifest.get("state") == "running":
            return "killed", (f"node {node} stopped while running it (job {job_id} "
                              f"{state.state if state else 'ended'}): the node failed or its "
                              "step was killed")
        if manifest.get("state") == "interrupted" and item.get("status") == "pending":
            # stopped before the entry began (during the step's preflight): it did not run
            return "interrupted", _not_run_reason(job_id, state)
        return item.get("status", "error"), item.get("error") or "no result written"
    if step.entry in exits:
        return "error", (f"the job step on {node} exited with code {exits[step.entry]} before "
                         f"the bench wrote anything (see {SLURM_DIR}/job-{job_id}.out)")
    if state is not None and not state.ended:
        return "pending", "not run yet"
    return "interrupted", _not_run_reason(job_id, state)


def gather(run_dir: Path, job_id: str, state: JobState | None,
           finished: bool = True) -> ManifestDoc:
    """Write the run's results and manifest from what the nodes wrote; returns the manifest."""
    from bench.multinode import combine_node_results

    job = read_job(run_dir)
    suite = _suite_of(job)
    entries = {e.id: e for e in suite.entries}
    nodes = state.nodes if state and state.nodes else _nodes_on_disk(run_dir)
    exits = steps_log(run_dir)
    items: list[ManifestEntry] = []
    contributions: dict[str, list[dict[str, Any]]] = {n: [] for n in nodes}
    for step in job.steps:
        entry = entries[step.entry]
        targets = nodes[:1] if step.placement == "single" else nodes
        found: list[tuple[str, dict[str, Any]]] = []
        for node in targets:
            _, doc = node_results(run_dir, node, step.entry)
            if doc is not None:
                found.append((node, doc))
                contributions.setdefault(node, []).append({
                    "entry": step.entry, "status": doc["status"], "sha256": doc["sha256"],
                    "file": f"{NODES_DIR}/{node}/{step.entry}/{step.entry}.json"})
        outputs: list[tuple[str, dict[str, Any] | None, list[str]]] = []
        if step.placement == "per_node":
            outputs = [(f"{step.entry}.{node}", doc, [node]) for node, doc in found]
        elif found and step.placement == "multi" and len(targets) > 1:
            ordered = sorted(found, key=lambda nd: nd[1]["placement"].get("node_rank", 0))
            missing = [n for n in targets if n not in {nd[0] for nd in found}]
            combined = combine_node_results([d for _, d in ordered], job.vendor, missing)
            outputs = [(step.entry, combined, targets)]
        elif found:
            outputs = [(step.entry, found[0][1], targets)]
        for name, doc, where in outputs:
            assert doc is not None
            # written as the nodes made it; accepting it (or setting it aside) is the
            # launchers' one policy, after the gathering (base.accept_results)
            atomic_write_json(run_dir / f"{name}.json", doc)
            item = {"id": name, "workload": entry.workload, "mode": entry.mode,
                    "status": doc["status"], "file": f"{name}.json", "sha256": doc["sha256"],
                    "nodes": where, "placement": step.placement,
                    "disturbed": (doc.get("disturbed") or {}).get("value")}
            items.append(item)
        absent = [n for n in targets if n not in {nd[0] for nd in found}]
        if not outputs or (step.placement == "per_node" and absent):
            for node in absent if step.placement == "per_node" else targets[:1] or ["?"]:
                status, why = _entry_outcome(run_dir, job_id, step, node, state, exits)
                name = f"{step.entry}.{node}" if step.placement == "per_node" else step.entry
                items.append({"id": name, "workload": entry.workload, "mode": entry.mode,
                              "status": status, "file": None, "sha256": None,
                              "nodes": [node], "placement": step.placement,
                              **({"error": why} if status != "pending" else {})})
    manifest = _manifest(run_dir, job, job_id, state, suite, items, contributions, finished)
    atomic_write_json(run_dir / MANIFEST, manifest)
    return manifest


def _nodes_on_disk(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / NODES_DIR).glob("*") if p.is_dir())


def _manifest(run_dir: Path, job: SlurmJob, job_id: str, state: JobState | None, suite: Any,
              items: list[ManifestEntry], contributions: dict[str, list[dict[str, Any]]],
              finished: bool) -> ManifestDoc:
    from bench.results import SCHEMA_VERSION

    previous: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        previous = json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))
    unfinished = any(i["status"] in ("pending", "interrupted", "killed") for i in items)
    # A job FAILED when a step exited non-zero (the batch script's exit status): with every
    # entry done, that is a workload that failed, which its status says; the run finished.
    run_state = "running" if not finished else (
        "interrupted" if unfinished or (
            state and state.state.split()[0] not in ("COMPLETED", "FAILED"))
        else "finished")
    first = (state.nodes[:1] if state and state.nodes else _nodes_on_disk(run_dir)[:1])
    idle = None
    if first:
        with contextlib.suppress(OSError, ValueError):
            idle = json.loads((run_dir / NODES_DIR / first[0] / "idle.json").read_text())
    record = state.record if state else {}
    return {
        "schema_version": SCHEMA_VERSION, "kind": "bench.manifest", "run_id": job.run_id,
        "suite": {"name": suite.name, "path": str(suite.path)}, "vendor": job.vendor,
        "state": run_state, "started_at": previous.get("started_at") or _utc(),
        "ended_at": _utc() if finished else None, "bench_version": __version__,
        "idle": idle,
        "placement": {"launcher": "slurm", "job_id": job_id, "nnodes": job.nodes,
                      "nproc_per_node": job.devices_per_node},
        "slurm": {
            "job_id": job_id, "state": state.state if state else "UNKNOWN (record gone)",
            "reason": state.reason if state else None,
            "exit_code": record.get("ExitCode"), "nodes": state.nodes if state else [],
            "submit_time": record.get("SubmitTime"), "start_time": record.get("StartTime"),
            "end_time": record.get("EndTime"), "time_limit": record.get("TimeLimit"),
            "batch_script": f"{SLURM_DIR}/{BATCH_SCRIPT}",
            "node_script": f"{SLURM_DIR}/{NODE_SCRIPT}",
            "record": f"{SLURM_DIR}/{RECORD_FILE}",
            "output": f"{SLURM_DIR}/job-{job_id}.out",
            "container": job.container, "image": job.image,
            "contributions": [{"node": n, "idle": f"{NODES_DIR}/{n}/idle.json",
                               "entries": c} for n, c in contributions.items()],
        },
        "entries": items,
    }


# -- the whole run -----------------------------------------------------------------------------
def run_job(job: SlurmJob, run_dir: Path, display: Display, poll_s: float = 2.0) -> int:
    """Submit, follow, gather. Exit code: 0 all finished, 1 a workload failed, 130 the job
    did not finish every entry (cancelled, time limit, node failure)."""
    from bench.results import EXPECTED_FAILURES

    script = write_job(job, run_dir)
    job_id = submit(script)
    display.note(f"submitted job {job_id}: {job.nodes} node(s), {len(job.steps)} entries; "
                 f"batch script {script}")
    atomic_write_json(run_dir / MANIFEST, _manifest(
        run_dir, job, job_id, None, _suite_of(job), [], {}, finished=False))
    state = follow(job, job_id, run_dir, display, poll_s)
    return finish(run_dir, job_id, state, display, EXPECTED_FAILURES)


def _suite_of(job: SlurmJob) -> Any:
    from bench.config import load_suite

    return load_suite(job.suite, overrides=list(job.request.overrides),
                      only=[s.entry for s in job.steps], vendor=job.vendor)


def finish(run_dir: Path, job_id: str, state: JobState | None, display: Display,
           expected: tuple[str, ...]) -> int:
    """Keep the scheduler's record, gather, and say how the job ended."""
    if state is not None:
        atomic_write_text(run_dir / SLURM_DIR / RECORD_FILE, state.text)
    manifest = gather(run_dir, job_id, state)
    counts: dict[str, int] = {}
    for item in manifest["entries"]:
        counts[item["status"]] = counts.get(item["status"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    display.line(f"job {job_id} {manifest['slurm']['state']}: {summary}; results in {run_dir}")
    if manifest["state"] == "interrupted":
        for item in manifest["entries"]:
            if item.get("error") and item["status"] in ("interrupted", "killed"):
                display.note(f"{item['id']}: {item['error']}")
        return 130
    failed = [i for i in manifest["entries"] if i["status"] not in ("ok", *expected)]
    return 1 if failed else 0


def regather(run_dir: Path, display: Display, poll_s: float = 2.0) -> int:
    """``invoke gather RUN_DIR``: follow a submitted job to its end (if it still runs),
    gather its results again (after the follower was stopped, or to refresh) and accept them
    as every launcher does."""
    from bench.results import EXPECTED_FAILURES

    try:
        manifest = json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))
        job_id = manifest["slurm"]["job_id"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{run_dir} holds no Slurm run (no manifest naming a job).",
                        "Name the run directory of an `invoke bench --slurm` run.") from exc
    job = read_job(run_dir)
    state = follow(job, job_id, run_dir, display, poll_s)
    code = finish(run_dir, job_id, state, display, EXPECTED_FAILURES)
    return settle(run_dir, Ran(code, interrupted=code == 130), accept_results(run_dir)).exit_code


# -- from the command line ---------------------------------------------------------------------
@dataclass(frozen=True)
class SlurmOptions:
    """``invoke bench --slurm`` options (the scheduler's side of the run)."""

    nodes: int = 1
    devices_per_node: int | None = None
    partition: str | None = None
    account: str | None = None
    time: str | None = None
    container: str = "none"
    gres: str | None = None  # overrides the vendor spec's generic resource name
    rdzv_port: int | None = None


def plan_job(request: RunRequest, options: SlurmOptions, root: Path | None = None,
             suite: Any = None) -> SlurmJob:
    """The job for this run: the request (with its run id and run directory), the scheduler's
    options and the vendor spec. Bad input is a ``UserError`` here, before anything is written
    or submitted. ``suite``: the request's suite, where the caller has loaded it already."""
    import sys

    from bench.config import load_suite, suite_path
    from testbed.images.spec import REPO_DIR, VENDORS, load_spec, unknown_vendor
    from testbed.launch.slurm_script import (
        CONTAINERS,
        SBATCH_VALUES,
        run_dir_problem,
        sbatch_problem,
        text_problem,
    )

    root = root or REPO_DIR
    vendor, suite_arg, image = request.vendor, request.suite, request.image
    if request.run_id is None or request.out is None:
        raise ValueError("plan_job needs the request's run id and run directory")
    if vendor not in VENDORS:
        raise unknown_vendor(vendor)
    # Everything below ends up in job.sbatch or node.sh: refuse what could break out of it.
    for key in SBATCH_VALUES:
        value = getattr(options, key)
        if value is not None and (problem := text_problem(f"--{key}", value)
                                  or sbatch_problem(key, value)):
            raise UserError(f"{problem}.", "Give the name or time Slurm expects (`sinfo` lists "
                            "the partitions); nothing was written or submitted.")
    for what, value in (("the suite", suite_arg), ("--label", request.label),
                        ("--image", image), *(("--set", o) for o in request.overrides),
                        *(("--only", o) for o in request.only)):
        if value is not None and (problem := text_problem(what, value)):
            raise UserError(f"{problem}.", f"Give {what} without control characters.")
    run_dir = Path(request.out).resolve()
    if problem := run_dir_problem(str(run_dir)):
        raise UserError(f"--out: {problem}.", "Choose a run directory whose path has no "
                        "spaces, quotes or shell characters (every node must reach it).")
    if options.nodes < 1:
        raise UserError(f"--nodes {options.nodes}: a job needs at least one node.",
                        "Give --nodes 1 or more.")
    if options.devices_per_node is not None and options.devices_per_node < 1:
        raise UserError(f"--devices-per-node {options.devices_per_node} is not a device count.",
                        "Give 1 or more, or leave it out (every device of the node).")
    if options.container not in CONTAINERS:
        raise UserError(f"--container {options.container!r} is not one of "
                        f"{', '.join(CONTAINERS)}.", "Choose docker, apptainer or none.")
    spec = load_spec(vendor, root)
    if spec.run["select_by"] == "single" and (options.devices_per_node or 1) > 1:
        raise UserError(f"--devices-per-node {options.devices_per_node}: a {vendor} node has "
                        "one device.", "Leave out --devices-per-node.")
    if suite is None:
        suite = load_suite(suite_arg, overrides=list(request.overrides),
                           only=list(request.only) or None, vendor=spec.data["bench_device"])
    path = suite_path(suite_arg)
    # A bundled suite is named (the nodes' checkout or image has it); a file is given by its
    # absolute path, which every node must see (the shared filesystem).
    suite_ref = suite_arg if not Path(suite_arg).suffix and not Path(suite_arg).exists() \
        else str(path.resolve())
    gres = options.gres or spec.data["cluster"]["slurm_gres"]
    container_options: tuple[str, ...] = ()
    if options.container == "docker":
        image, container_options = _docker(spec, image, options.devices_per_node, root)
    elif options.container == "apptainer":
        image, container_options = _apptainer(spec, image)
    try:
        return SlurmJob(
            request=replace(request, suite=suite_ref, out=run_dir, launcher="slurm"),
            bench_device=spec.data["bench_device"], nodes=options.nodes,
            steps=plan_steps(suite), devices_per_node=options.devices_per_node,
            gres=gres, partition=options.partition, account=options.account,
            time=options.time, container=options.container, python=sys.executable,
            repo_dir=str(root), image=image, container_options=container_options,
            rdzv_port=options.rdzv_port)
    except ValueError as exc:
        raise UserError(f"Slurm job: {exc}.", "Fix the option named.") from exc


def _docker(spec: Any, image: str | None, devices: int | None,
            root: Path) -> tuple[str, tuple[str, ...]]:
    """The image every node's engine must hold (the one built from these sources unless
    --image names another) and the vendor's ``docker run`` options for it."""
    from testbed.images.containers import find_bench_image
    from testbed.images.engine import connect, image_digest

    client = connect()
    img = find_bench_image(client, spec, image, root)
    tag = image or (img.tags[0] if img.tags else img.id)
    revision = img.labels.get("org.opencontainers.image.revision", "unknown")
    return tag, docker_node_options(spec, tag, image_digest(img), revision, devices,
                                    os.getuid(), os.getgid())


def docker_node_options(spec: Any, tag: str, digest: str, revision: str, devices: int | None,
                        uid: int, gid: int, host_root: Path = Path("/")) -> tuple[str, ...]:
    """``docker run`` options on a node: the vendor spec's passthrough for devices 0..G-1 (the
    job owns whole nodes), without the results mount and network of a local run (the node
    script mounts the node's directory; the ranks of several nodes meet over the network)."""
    from testbed.images.containers import RESULTS_MOUNT, run_options

    opts = run_options(spec, tag, digest, revision, [], Path("/unused"),
                       list(range(devices)) if devices else None, [], uid, gid,
                       host_root=host_root)
    opts.mounts = [m for m in opts.mounts if m.target != RESULTS_MOUNT]
    opts.network_mode = None
    return tuple(opts.cli_options())


def _apptainer(spec: Any, image: str | None) -> tuple[str, tuple[str, ...]]:
    """A SIF file (``apptainer build bench.sif docker-daemon://TAG``) and the vendor's flags;
    the file's sha256 stands for the image digest in the results."""
    import hashlib

    from bench.provenance import IMAGE_DIGEST_ENV, IMAGE_ENV

    if not image:
        raise UserError("--container apptainer needs --image FILE.sif.",
                        f"Convert the built image: `apptainer build bench-{spec.vendor}.sif "
                        f"docker-daemon://accel-testbed/{spec.vendor}:TAG` (docs/cluster.md).")
    path = Path(image)
    if not path.is_file():
        raise UserError(f"Apptainer image {image} does not exist.",
                        "Give the path of a .sif file every node can read.")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    flags = list(spec.data["cluster"]["apptainer_flags"])
    flags += ["--env", f"{IMAGE_ENV}={path.resolve()},"
                       f"{IMAGE_DIGEST_ENV}=sha256:{digest.hexdigest()}"]
    return str(path.resolve()), tuple(flags)


class SlurmLauncher(Launcher):
    """``invoke bench --slurm``: plan, submit, follow and gather one run."""

    name = "slurm"
    needs_vendor = ("A Slurm run needs --vendor (the nodes' devices).", "Give one of {}.")

    def __init__(self, results_root: Path, options: SlurmOptions,
                 poll_s: float = 2.0) -> None:
        super().__init__(results_root)
        self.options = options
        self.poll_s = poll_s

    def check_own(self, request: RunRequest, vendor: str) -> None:
        if request.devices is not None:
            raise UserError("--devices selects devices of this machine; a Slurm job gets its "
                            "nodes' devices from the scheduler.",
                            "Give --devices-per-node G instead.")
        if not request.device.empty:
            raise UserError("--threads, --interop-threads and --cpus are not passed to a Slurm "
                            "job's nodes.",
                            "Set them in the suite (an entry's device: threads, cpus; applied "
                            "on every node), or drop them.")
        require_scheduler()  # before the suite: a machine that cannot submit is told so at once

    def prepare(self, plan: Plan) -> SlurmJob:
        return plan_job(plan.request, self.options, suite=plan.suite)

    def execute(self, plan: Plan) -> Ran:
        from bench.rundir import prepare_out_dir

        job: SlurmJob = plan.own
        prepare_out_dir(plan.out_dir)
        display = Display()
        display.line(f"run {plan.run_id}: suite {plan.request.suite} on {self.options.nodes} "
                     f"Slurm node(s) -> {plan.out_dir}")
        try:
            code = run_job(job, Path(job.run_dir), display, self.poll_s)
        except KeyboardInterrupt:
            display.note(f"stopped following; the job may still be ending: `invoke gather "
                         f"{plan.out_dir}` gathers it")
            code = 130
        return Ran(code, interrupted=code == 130)
