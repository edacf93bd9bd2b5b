"""``python -m bench``: run a suite, validate results, list what exists.

This is the entry point inside every image (``invoke bench`` calls ``python -m bench run``)
and natively. Bad input is a ``UserError``: one paragraph naming the thing and the fix, exit
code 2, no traceback, no partial file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import __version__
from bench.errors import EXIT_USAGE, UserError
from bench.vendors import vendor_list

if TYPE_CHECKING:
    from bench.config import DeviceSettings


def cmd_run(args: argparse.Namespace) -> int:
    from bench.config import load_suite
    from bench.devices import get_backend
    from bench.ids import check_label, check_run_id
    from bench.progress import Display
    from bench.rundir import claim_out_dir
    from bench.runner import Runner, new_run_id

    if args.run_id is not None:
        check_run_id(args.run_id)
    placement = _placement(args)
    devices = _select_devices(args.device, args.devices)
    backend = get_backend(args.device)
    suite = load_suite(args.suite, overrides=args.set, only=_split(args.only),
                       vendor=backend.vendor, device=device_settings(args))
    refuse_single_device_on_nodes(suite, placement)
    for entry in suite.entries:
        check_cpus(entry.device, entry.id)
    label = check_label(args.label) if args.label is not None else None
    run_id = args.run_id or new_run_id(backend.vendor, suite.name)
    out = claim_out_dir(Path(args.out) if args.out else Path("results") / run_id, run_id)
    display = Display(quiet=args.quiet)
    display.run_started(run_id, suite.name, backend.vendor, len(suite.entries), out)
    return Runner(suite, backend, out, run_id, display, sys.argv, placement=placement,
                  devices=devices, idle_file=Path(args.idle_file) if args.idle_file else None,
                  label=label, require_quiet=args.require_quiet).run()


def device_settings(args: argparse.Namespace) -> DeviceSettings:
    """``--threads``, ``--interop-threads`` and ``--cpus`` as the run's device settings."""
    from bench.config import DeviceSettings

    return DeviceSettings.from_cli(args.threads, args.interop_threads, args.cpus)


def check_cpus(settings: DeviceSettings, entry_id: str) -> None:
    """Refuse CPUs this process may not run on (the child could not pin to them)."""
    import os

    from bench.config import format_cpus

    if not settings.cpus or not hasattr(os, "sched_getaffinity"):
        return
    allowed = os.sched_getaffinity(0)
    missing = [c for c in settings.cpus if c not in allowed]
    if missing:
        raise UserError(f"Entry {entry_id!r} asks for CPUs {format_cpus(missing)}, which this "
                        f"process may not use (allowed: {format_cpus(sorted(allowed))}).",
                        "Choose CPUs from the allowed list with --cpus (or the suite's "
                        "device.cpus).")


def _placement(args: argparse.Namespace) -> Any:
    """The launcher's placement of this run (``--nnodes``, ``--node-rank``, ...)."""
    from bench.distributed import Placement

    try:
        return Placement(launcher=args.launcher, node=args.node or "", node_rank=args.node_rank,
                         nnodes=args.nnodes, nproc_per_node=args.nproc_per_node,
                         rdzv_endpoint=args.rdzv_endpoint, rdzv_id=args.rdzv_id,
                         job_id=args.job_id, per_node=args.per_node)
    except ValueError as exc:
        raise UserError(f"Placement arguments: {exc}.",
                        "Give --nnodes N with --node-rank 0..N-1 and --rdzv-endpoint "
                        "HOST:PORT of the first node (a launcher such as `invoke bench "
                        "--slurm` sets them).") from exc


def _select_devices(device: str, text: str | None) -> list[int] | None:
    """``--devices 0,1``: make only those devices visible to the run's processes (the
    backend's ``*_VISIBLE_DEVICES``), before anything opens a device."""
    import os

    from bench.devices import BACKENDS, detect

    if not text:
        return None
    from bench.distributed import parse_devices

    devices = parse_devices(text)
    assert devices is not None
    name = detect() if device == "auto" else device
    env = BACKENDS[name].visible_devices_env if name in BACKENDS else None
    if env is None:
        raise UserError(f"--devices {text}: the {name} backend has no devices to select.",
                        "Drop --devices.")
    os.environ[env] = ",".join(str(d) for d in devices)
    return devices


def refuse_single_device_on_nodes(suite: Any, placement: Any) -> None:
    """An entry that runs once on one device cannot be placed on several nodes."""
    from bench.workload import get_workload

    if placement.nnodes == 1:
        return
    single = [e.id for e in suite.entries
              if not get_workload(e.workload).places_on_every_node(e.params)]
    if single:
        raise UserError(f"--nnodes {placement.nnodes}: entr{'y' if len(single) == 1 else 'ies'} "
                        f"{', '.join(single)} run on one device of one node.",
                        "Run only multi-node entries (collectives, training with nnodes) "
                        "on several nodes (--only), or leave out --nnodes.")


def cmd_validate(args: argparse.Namespace) -> int:
    from bench.validate import find_files, listing_problems, validate_file

    files = find_files(Path(p) for p in args.paths)
    if not files:
        raise UserError(f"No JSON files found in {', '.join(args.paths)}.",
                        "Give result files or a run directory (results/<run-id>/).")
    bad = 0
    reports = {found.path: validate_file(found.path, found.root) for found in files}
    for report in reports.values():
        if report.ok and report.schema == "manifest":
            report.problems += listing_problems(report, reports)
    for found in files:
        path = found.path
        report = reports[path]
        if report.ok:
            if not args.quiet:
                print(f"ok       {path} ({report.schema})")
            continue
        bad += 1
        print(f"INVALID  {path} ({report.schema or 'unreadable'}):")
        for problem in report.problems:
            print(f"    {problem}")
    if bad:
        print(f"{bad} of {len(files)} file(s) invalid. Fix or re-run the workloads named above; "
              "schemas/ describes every field.", file=sys.stderr)
        return EXIT_USAGE
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """Vendors (detected in a child process, which imports torch), suites (read as data) and
    workloads (from the model facts): this process imports neither torch nor a workload."""
    from bench.config import available_suites, suite_outline
    from bench.model_facts import load as model_facts
    from bench.vendors import DetectionChild

    child = DetectionChild()  # torch loads there while the suites are read here
    try:
        suites = [(name, *suite_outline(name)) for name in available_suites()]
        workloads = model_facts()
        presence = child.result()
    finally:
        child.stop()
    print("vendors:")
    for p in presence:
        print(f"  {p.vendor:<8} {p.state:<9}  {p.reason}")
    print("suites:")
    width = max(len(s[0]) for s in suites)
    for name, description, count in suites:
        print(f"  {name:<{width}} {count:>3} entries  {description}")
    print("workloads:")
    width = max(len(n) for n in workloads)
    for name, facts in workloads.items():
        print(f"  {name:<{width}} {'/'.join(facts.modes):<12} {facts.description}")
    return 0


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"bench {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a suite and write one result per workload")
    run.add_argument("--suite", required=True, help="suite name (see `list`) or a suite file")
    run.add_argument("--out", help="run directory to write (default results/<run-id>)")
    run.add_argument("--device", default="auto",
                     help=f"vendor backend: auto, {vendor_list()}")
    run.add_argument("--only", help="comma-separated entry ids to run")
    run.add_argument("--set", action="append", default=[], metavar="ENTRY.PARAM=VALUE",
                     help="override a workload parameter, a run rule ([ENTRY.]rules.RULE=V) "
                          "or compile (ENTRY.compile=true); recorded, marked non-comparable. "
                          "quiet.NAME=V changes a threshold of the disturbed judgment")
    run.add_argument("--threads",
                     help="PyTorch intra- and inter-op threads of every entry (the size of a "
                          "cpu device; recorded in provenance)")
    run.add_argument("--interop-threads", help="inter-op threads, if not --threads")
    run.add_argument("--cpus", help="pin the benchmark processes to these logical CPUs, "
                                    "e.g. 0-15 or 0,2,4 (threads default to their number)")
    run.add_argument("--run-id", help="run id (default: time-vendor-suite-random)")
    run.add_argument("--label",
                     help="name of this run's configuration, stored in each result's "
                          "provenance; the report shows runs with different labels as "
                          "different devices")
    run.add_argument("--quiet", action="store_true", help="no progress display")
    run.add_argument("--require-quiet", action="store_true",
                     help="a measurement disturbed by other processes, steal, throttling or a "
                          "repeat spread (the suite's quiet thresholds, --set quiet.NAME=V) is "
                          "an error status instead of a warning")
    run.add_argument("--devices", help="device indices this run may use, e.g. 0,1 (default: "
                                       "all visible); multi-rank entries use all of them")
    place = run.add_argument_group(
        "placement", "where a launcher placed this run (invoke bench --slurm sets these)")
    place.add_argument("--launcher", default="native", choices=["native", "container", "slurm"],
                       help="what started this run (recorded in each result)")
    place.add_argument("--nnodes", type=int, default=1,
                       help="nodes that run the multi-rank entries together")
    place.add_argument("--node-rank", type=int, default=0, help="this node's rank (0: first)")
    place.add_argument("--rdzv-endpoint", metavar="HOST:PORT",
                       help="torchrun c10d rendezvous on the first node")
    place.add_argument("--rdzv-id", help="rendezvous id shared by the nodes")
    place.add_argument("--nproc-per-node", type=int,
                       help="ranks per node of multi-rank entries (default: one per device)")
    place.add_argument("--node", help="this node's name (default: the scheduler's or host's)")
    place.add_argument("--job-id", help="the scheduler's job id, recorded in each result")
    place.add_argument("--per-node", action="store_true",
                       help="this is one node's run of a per-node sweep (each node a result)")
    place.add_argument("--idle-file", metavar="PATH",
                       help="read the node's idle telemetry from PATH, or measure and write it "
                            "there (one measurement per node for a job of many steps)")
    run.set_defaults(func=cmd_run)

    val = sub.add_parser("validate", help="validate result files against the schema")
    val.add_argument("paths", nargs="+", help="result files or run directories")
    val.add_argument("--quiet", action="store_true", help="print only invalid files")
    val.set_defaults(func=cmd_validate)

    lst = sub.add_parser("list", help="list vendors, suites and workloads")
    lst.set_defaults(func=cmd_list)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
