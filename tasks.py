"""Invoke tasks: the front door (``invoke --list``).

Host-side only. Benchmarks themselves run in ``python -m bench`` (natively with ``--native``,
otherwise in the vendor's image).
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from invoke import Exit, Task, task

from bench.vendors import vendor_list

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
REPORTS = ROOT / "reports"
AUDITS = ROOT / "audits"
PUBLISHED = ROOT / "published"
PY = shlex.quote(sys.executable)


STORE_HELP = ("results store: a DuckDB file or postgresql://USER@HOST/DB (default "
              "$TESTBED_STORE, else store.duckdb here)")
FILTER_HELP = {
    "device": "device name, run label or device key contains this (repeatable)",
    "workload": "entry id or workload name (repeatable)",
    "since": "results started on or after this date (ISO, UTC)",
    "until": "results started on or before this date",
    "run": "run id contains this", "suite": "suite name", "vendor": "device backend",
    "image": "image tag or digest contains this", "driver": "driver version contains this",
    "torch": "torch build contains this",
    "audit": "pass, fail, inconclusive or cannot_rerun (latest verdict), none (never audited), "
             "any (audited)",
}


class ConventionalFlags(Task):
    """A task whose only short flags are conventional ones (``-s`` suite, ``-o`` out):
    invoke's automatic short flags were letters nobody would guess (``-u`` for --slurm, ``-y``
    for --memory) and, once the letters ran out, ``--`` for --no-store."""

    SHORT = {"suite": "s", "out": "o"}

    def arg_opts(self, name: str, default: str, taken_names: set[str]) -> dict:
        opts = super().arg_opts(name, default, taken_names)
        short = self.SHORT.get(name)
        if short and short not in taken_names:
            opts["names"].append(short)
        return opts


def _fail(exc: Exception) -> Exit:
    return Exit(f"error: {exc}", code=2)


def _store_add(paths: list[Path], store: str | None, refused_ok: bool = False) -> None:
    """Add documents to the store; the files stay where they are whatever happens here.

    A refused document is exit code 2, except after an audit (``refused_ok``): there an
    edited file is what the verdict already reports."""
    from bench.errors import UserError
    from testbed.store import cli, open_store

    try:
        with open_store(store, ROOT) as st:
            summary = cli.add(st, paths)
    except UserError as exc:
        raise Exit(f"error: {exc}\nThe files are kept; add them later with `invoke store add "
                   f"{shlex.quote(str(paths[0]))}`.", code=2) from exc
    if summary.refused and not refused_ok:
        raise Exit(code=2)


def _filters(device=None, workload=None, since=None, until=None, run=None, suite=None,
             vendor=None, image=None, driver=None, torch=None, audit=None):
    from testbed.store.queries import make_filters

    return make_filters(device, workload, suite, vendor, run, image, driver, torch, since,
                        until, audit)


def latest_run(results: Path = RESULTS) -> Path:
    from bench.errors import UserError

    runs = sorted((p for p in results.glob("*/manifest.json")), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise UserError(f"No runs under {results}.",
                        "Run `invoke bench --native --suite smoke` first, or name a results "
                        "directory.")
    return runs[-1].parent


@task(
    klass=ConventionalFlags,
    auto_shortflags=False,
    iterable=["set_"],
    help={
        "suite": "a suite name or a suite file (default smoke; `invoke list` lists the suites)",
        "vendor": f"{vendor_list()} (the image to run in; with --native the default is "
                  "what this machine has)",
        "native": "run in this Python environment instead of the vendor's image",
        "out": "run directory (default results/<run-id>)",
        "only": "comma-separated entry ids",
        "set_": "ENTRY.PARAM=VALUE | [ENTRY.]rules.RULE=VALUE | ENTRY.compile=true "
                "(repeatable): an override, recorded and marked non-comparable; "
                "quiet.NAME=VALUE: a threshold of the disturbed judgment (docs/measurement.md)",
        "require_quiet": "a measurement disturbed by other processes, CPU steal, throttling "
                         "or a repeat spread is an error status, not a warning",
        "threads": "PyTorch intra- and inter-op threads of every entry (on the cpu: the size of "
                   "the device)",
        "interop_threads": "inter-op threads, if not --threads",
        "cpus": "pin the benchmark to these logical CPUs, e.g. 0-15 or 0,2,4",
        "report": "write a report of the run when it ends (default on)",
        "report_out": "report directory (default reports/<run-id>)",
        "label": "name of this run's configuration (stored in the results; the report shows "
                 "runs with different labels as different devices)",
        "devices": "device indices the run may use, e.g. 0,1 (default: all); multi-rank "
                   "entries use every one",
        "image": "run this image instead of the one built from the current sources (with "
                 "--slurm --container apptainer: the .sif file)",
        "memory": "container memory limit, e.g. 32g (default: the vendor spec's, none)",
        "no_store": "do not add the run to the results store",
        "store": STORE_HELP,
        "sign": "sign the run's manifest with this SSH key when it ends (docs/security.md)",
        "slurm": "submit the suite as a Slurm batch job and gather the nodes' results",
        "nodes": "--slurm: nodes of the job (multi-rank entries run on all of them)",
        "devices_per_node": "--slurm: devices per node (default: every device of the node)",
        "partition": "--slurm: partition", "account": "--slurm: account",
        "time": "--slurm: time limit (Slurm's format, e.g. 2:00:00)",
        "container": "--slurm: docker, apptainer or none (natively; the default)",
        "gres": "--slurm: the generic resource name (default: the vendor spec's, e.g. gpu)",
        "rdzv_port": "--slurm: rendezvous port on the first node (default 29400 + job id "
                     "% 1000)",
    },
)
def bench(c, suite="smoke", vendor="auto", native=False, out=None, only=None, set_=None,
          report=True, report_out=None, label=None, devices=None, interop_threads=None,
          image=None, memory=None, no_store=False, threads=None, store=None, cpus=None,
          slurm=False, sign=None,
          nodes=None, devices_per_node=None, partition=None, account=None, time=None,
          container="none", gres=None, rdzv_port=None, require_quiet=False):
    """Run a benchmark suite and write one validated JSON result per workload."""
    from bench.errors import UserError
    from testbed.launch import launcher_for
    from testbed.launch.cli import BenchFlags

    flags = BenchFlags.pick(locals())  # what to run and where (testbed/launch/cli.py)
    try:
        request, options = flags.request(), flags.options()
        if sign:
            from testbed.signing import check_key

            check_key(Path(sign))
        outcome = launcher_for(request, options, RESULTS).launch(request)
        if outcome.exit_code == 2:  # refused before it started: nothing to report or store
            raise Exit(f"error: {outcome.error}" if outcome.error else "", code=2)
        if sign:
            from testbed.signing import sign_file

            print(f"signed: {sign_file(outcome.out_dir, Path(sign))[0]}")
        if report:
            _report([outcome.out_dir],
                    Path(report_out) if report_out else REPORTS / outcome.out_dir.name)
    except UserError as exc:
        raise _fail(exc) from exc
    if not no_store:
        _store_add([outcome.out_dir], store)
    if outcome.exit_code:
        raise Exit(f"{outcome.out_dir}: {outcome.error or 'not every workload finished'} "
                   "(status in the results above).", code=outcome.exit_code)


def _seconds(text: object, option: str) -> float:
    """A positive number of seconds from the command line (a clear error otherwise)."""
    from bench.errors import UserError

    try:
        value = float(str(text))
    except ValueError:
        value = float("nan")
    if not 0 < value <= 86_400 * 7:
        raise UserError(f"{option} {text!r} is not a number of seconds.",
                        "Give a positive number, e.g. 60.")
    return value


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


@task(help={"run": "the run directory of an `invoke bench --slurm` run",
            "report": "write the report again afterwards (default on)"})
def gather(c, run, report=True):
    """Follow a Slurm run's job to its end (if it still runs) and gather its results again."""
    from bench.errors import UserError
    from bench.progress import Display
    from testbed.launch.slurm import regather

    try:
        code = regather(Path(run), Display())
        if report:
            _report([Path(run)], REPORTS / Path(run).name)
    except UserError as exc:
        raise _fail(exc) from exc
    if code:
        raise Exit(code=code)


def _report(paths: list[Path], out: Path, baseline: list[Path] | None = None,
            score_a: str | None = None, weights: list[str] | None = None,
            composite: str = "default", references: list[str] | None = None,
            scorecard: bool = False, sections: list | None = None) -> None:
    from testbed.report import write_report
    from testbed.report.metrics import score_settings
    from testbed.report.references import resolve

    paths = [*paths, *(resolve(r) for r in references or [])]
    files = write_report(paths, out, baseline=baseline,
                         settings=score_settings(score_a, weights, composite),
                         scorecard=scorecard, sections=sections)
    a = files.analysis
    failed = sum(len(r.findings) for r in a.reviews) + len(a.copies)
    print(f"report: {files.html}\n        {files.markdown}, {files.csv.name}, "
          f"{files.scores_csv.name}\n        {len(a.inputs.results)} result(s) from "
          f"{len(a.devices)} device configuration(s), {len(a.inputs.invalid)} invalid file(s) "
          "listed, "
          f"{failed} failed plausibility check(s)")
    if files.scorecard_csv is not None:
        from testbed.scorecard.build import build_scorecards

        print(f"        scorecard: {files.scorecard_csv.name}")
        for card in build_scorecards(a.inputs, a.baseline_inputs):
            print(f"        {card.device}: {card.headline}")


@task(
    iterable=["results", "baseline", "weight", "device", "workload", "reference"],
    help={"results": "result files or run directories (repeatable; default: the latest run)",
          "reference": "add a reference result set to compare with: a bundled one by name "
                       "(testbed/report/references/) or a run directory (repeatable)",
          "baseline": "results of the baseline device (repeatable): adds baseline-relative "
                      "scores; with --from-store a device filter naming one device",
          "out": "output directory (default reports/<run-id>; several inputs: "
                 "reports/combined-<first two>-<hash of all inputs>; reports/store)",
          "score_a": "composite score scale a (default 3)",
          "weight": "METRIC=K composite weight (repeatable; K=0 leaves a metric out)",
          "composite": "metric set of the composite: default (this test-bed's) or published "
                       "(exactly the publication's four: throughput, items/J, power, "
                       "latency)",
          "from_store": "read the results from the store (filters below) instead of files",
          "store": STORE_HELP,
          "scorecard": "add the large-model scorecard against the A100 baseline (the "
                       "--baseline run, else the template's values; docs/scorecard.md) and "
                       "scorecard.csv",
          **FILTER_HELP},
)
def report(c, results=None, baseline=None, out=None, score_a=None, weight=None,
           composite="default", from_store=False, store=None, device=None, workload=None,
           since=None, until=None, run=None, suite=None, vendor=None, image=None, driver=None,
           torch=None, audit=None, reference=None, scorecard=False):
    """Check, aggregate and score results: HTML, Markdown and CSV report."""
    from bench.errors import UserError

    if from_store:
        from testbed.store import open_store
        from testbed.store.report import export_for_report

        try:
            if results:
                raise UserError("--results and --from-store exclude each other.",
                                "Drop one: the store holds what `invoke store add` added.")
            target = Path(out) if out else REPORTS / "store"
            f = _filters(device, workload, since, until, run, suite, vendor, image, driver,
                         torch, audit)
            with open_store(store, ROOT, read_only=True) as st:
                paths, base = export_for_report(st, f, baseline or [], target)
                section = _changes_section(st, f)
            _report(paths, target, base, score_a, weight, composite, reference, scorecard,
                    [section])
        except UserError as exc:
            raise _fail(exc) from exc
        return
    try:
        from testbed.report.build import report_dir_name

        paths = [Path(p) for p in results] if results else [latest_run()]
        target = Path(out) if out else REPORTS / report_dir_name(
            paths, [Path(p) for p in baseline or []], reference)
        _report(paths, target, [Path(p) for p in baseline or []], score_a, weight, composite,
                reference, scorecard)
    except UserError as exc:
        raise _fail(exc) from exc


def _changes_section(st, f):
    """The changes in a report's range (``--since`` limits the changes, not their history)."""
    from bench.errors import UserError
    from testbed.store.changes import find_changes, report_section, summary_line

    try:
        found = find_changes(st, f)
    except UserError as exc:
        return report_section(None, f"No change to report: {exc.what}")
    print(summary_line(found, st.location.shown))
    return report_section(found)


@task(
    iterable=["device", "workload", "metric"],
    help={"device": FILTER_HELP["device"], "workload": FILTER_HELP["workload"],
          "since": "list the changes after this date (ISO, UTC); the runs before it are the "
                   "history they are measured against",
          "until": "leave out results started after this date",
          "vendor": FILTER_HELP["vendor"], "suite": FILTER_HELP["suite"],
          "metric": "metric of the series (repeatable; default throughput_items_per_s)",
          "include_all": "keep disturbed runs, failed plausibility checks and failed audits "
                         "in the series (they are left out by default, with their count)",
          "pvalue": "the change-point test's p-value threshold (default 0.0001)",
          "format": "table or json",
          "store": STORE_HELP},
)
def changes(c, device=None, workload=None, since=None, until=None, vendor=None, suite=None,
            metric=None, include_all=False, pvalue=None, format="table", store=None):
    """What changed: regressions and improvements across the store.

    Every (device, workload, metric) series, with the provenance change that came with each
    step (docs/store.md)."""
    from bench.errors import UserError
    from testbed.store import open_store
    from testbed.store.changes import ChangeSettings, find_changes, print_changes

    try:
        if format not in ("table", "json"):
            raise UserError(f"--format {format!r} is not table or json.", "Pick one of them.")
        try:
            settings = ChangeSettings() if pvalue is None else \
                ChangeSettings(max_pvalue=float(pvalue))
        except ValueError as exc:
            raise UserError(f"--pvalue {pvalue!r} is not a number.",
                            "Give a probability such as 0.0001.") from exc
        f = _filters(device, workload, since, until, None, suite, vendor, None, None, None,
                     None)
        with open_store(store, ROOT, read_only=True) as st:
            found = find_changes(st, f, tuple(metric or ()) or ("throughput_items_per_s",),
                                 include_all, settings)
            print_changes(found, st.location.shown, format)
    except UserError as exc:
        raise _fail(exc) from exc


@task(
    name="import",
    iterable=["assume", "other_models"],
    help={"table": "the published table: CSV (wide or the vendor's long shape) or YAML",
          "title": "citation: the publication's title",
          "url": "citation: where to read it (or --doi)",
          "doi": "citation: its DOI (or --url)",
          "table_name": "citation: the table's number or caption as printed, e.g. 'Table 3'",
          "page": "citation: the page (leave out for a web page)",
          "publisher": "citation: who published it (a vendor, a lab)",
          "role": "vendor (the device's maker claims the figures) or independent",
          "device": "the device of every row, for a table without a device column",
          "count": "devices per row's figures (default 1)",
          "mode": "train or infer, for rows that do not say",
          "precision": "fp32, tf32, fp16, bf16, int8, ..., for rows that do not say",
          "assume": "FACT=VALUE for rows that do not print it, recorded as an assumption in "
                    "each document and named by the report (repeatable): config=full, "
                    "batch_size=64, streams=1; nothing is assumed otherwise",
          "other_models": "PATTERN[,PATTERN...]=GROUP: models that are not workloads here, "
                          "imported as workloads of their own in GROUP (cv, nlp, llm, rec, "
                          "micro; repeatable, tried before the default patterns)",
          "label": "the device's name in reports",
          "out": "directory for the documents (default published/<publisher>-<table>/)"},
)
def import_(c, table, title=None, url=None, doi=None, table_name=None, page=None,
            publisher=None, role=None, device=None, count=None, mode=None, precision=None,
            assume=None, other_models=None, label=None, out=None):
    """Import a published table: one validated document per row, for invoke report."""
    from bench.errors import UserError
    from testbed.published import import_table

    source = {"title": title, "url": url, "doi": doi, "table": table_name, "page": page,
              "publisher": publisher, "role": role}
    options = {"device": device, "count": count, "mode": mode, "precision": precision,
               "label": label, "assume": assume, "other_models": other_models}
    try:
        done = import_table(Path(table), Path(out) if out else None, source, options,
                            root=PUBLISHED, progress=lambda m: print(f"import: {m}",
                                                                     flush=True))
    except UserError as exc:
        raise _fail(exc) from exc
    cells = ", ".join(f"{n} {status}" for status, n in sorted(done.statuses.items()))
    print(f"import: {len(done.files)} document(s) in {done.out}\n        cells: {cells}")
    for note in done.notes:
        print(f"        note: {note}")


@task(
    help={"run": "the submitted run directory (results/<run-id>/) or one result file in it",
          "image": "the image to re-run in (tag or digest; default: the digest the results "
                   "name, which must be in the local engine)",
          "tolerance": "tolerance file (default testbed/audit/tolerances.yaml)",
          "native": "re-run in this Python environment instead of the image (for results "
                    "measured natively; the bench sources must be the submitted ones)",
          "out": "audit directory (default audits/<run-id>-audit-<time>)",
          "no_store": "do not add the verdict (and the judged run) to the results store",
          "store": STORE_HELP,
          "sign": "sign the verdict with this SSH key (a private key, or the .pub of one "
                  "ssh-agent holds): a store counts only signed verdicts as audits"},
)
def audit(c, run, image=None, tolerance=None, native=False, out=None, no_store=False,
          store=None, sign=None):
    """Check a submitted run, re-run it from its image and give a verdict.

    Exit 0 pass, 1 fail, 3 inconclusive, 2 bad input or cannot re-run here."""
    from bench.errors import UserError
    from testbed.audit.run import audit as run_audit
    from testbed.audit.run import print_summary

    try:
        result = run_audit(Path(run), AUDITS, image=image,
                           tolerance=Path(tolerance) if tolerance else None, native=native,
                           out=Path(out) if out else None, sign=Path(sign) if sign else None)
    except UserError as exc:
        raise _fail(exc) from exc
    print_summary(result)
    if not no_store:
        # The judged run first, so the verdict links to documents that are in the store.
        _store_add([Path(result.verdict["submitted"]["path"]), result.path], store,
                   refused_ok=True)
    if result.cannot_rerun:
        raise Exit("error: this machine cannot re-run the submission (reason above, and in "
                   f"{result.path}). Audit it on a machine with the vendor's device.", code=2)
    if result.exit_code:  # 1: fail, 3: inconclusive (docs/audit.md)
        raise Exit(code=result.exit_code)


@task(name="audit-study", auto_shortflags=False, help={
    "suite": "suite of the honest submissions (default smoke)",
    "honest": "honest submissions, each run and audited (default 10)",
    "factors": "inflations to forge, comma-separated (default 1.05,1.1,1.2,1.5,3)",
    "per_factor": "forged audits per factor (default 10)",
    "busy": "keep one CPU busy with another process throughout",
    "tolerance": "tolerance file for the audits (default testbed/audit/tolerances.yaml)",
    "only": "audit only this result file of each submission, e.g. resnet-infer.json",
    "out": "study directory (default audits/study-<time>)"})
def audit_study(c, suite="smoke", honest=10, factors="1.05,1.1,1.2,1.5,3", per_factor=10,
                busy=False, tolerance=None, only=None, out=None):
    """Measure the audit's power: honest and forged submissions audited, load recorded.

    Prints the table docs/audit.md holds (docs/audit.md, "The power study")."""
    import time as _time

    from bench.errors import UserError
    from testbed.audit.study import StudyConfig, markdown, run_study

    try:
        cfg = StudyConfig(suite=suite, honest=int(honest), per_factor=int(per_factor),
                          factors=tuple(float(f) for f in _split(factors) or ()),
                          busy=busy, tolerance=Path(tolerance) if tolerance else None,
                          only=only, out=Path(out) if out else AUDITS / _time.strftime(
                              "study-%Y%m%dT%H%M%S"))
        record = run_study(cfg)
    except ValueError as exc:
        raise Exit(f"error: --factors, --honest and --per-factor take numbers ({exc}).",
                   code=2) from exc
    except UserError as exc:
        raise _fail(exc) from exc
    print(markdown(record), end="")
    print(f"(record: {cfg.out / 'study.json'})")


@task(help={"path": "a verdict.json, a manifest.json or a run directory (its manifest)",
            "key": "the SSH key to sign with (a private key, or the .pub of one ssh-agent "
                   "holds)"})
def sign(c, path, key):
    """Sign a verdict or a run's manifest with an SSH key (docs/security.md).

    A store whose trust file lists the key shows who audited or submitted it."""
    from bench.errors import UserError
    from testbed.signing import sign_file

    try:
        target, kind = sign_file(Path(path), Path(key))
    except UserError as exc:
        raise _fail(exc) from exc
    print(f"signed: {target} ({'verdict' if kind == 'audit' else 'manifest'})")


@task(
    positional=["action", "target"],
    iterable=["path", "device", "workload"],
    help={"action": "add PATH | list runs|results|tables | query SQL | export DIR | "
                    "reader ROLE | trust FILE",
          "target": "what the action works on (see action)",
          "path": "add: more paths (repeatable)",
          "store": STORE_HELP,
          "limit": "list: the newest N (default 100, 0: all); query: at most N rows "
                   "(default 10000)",
          "format": "query: table, csv or json",
          "timeout": "query: stop it after this many seconds (default 120)",
          "parquet": "export: one Parquet file per table into DIR/parquet/",
          "documents": "export: the original documents, byte for byte, into DIR/documents/",
          **FILTER_HELP},
)
def store(c, action, target, path=None, store=None, limit=None, format="table",
          parquet=False, documents=False, device=None, workload=None, since=None, until=None,
          run=None, suite=None, vendor=None, image=None, driver=None, torch=None, audit=None,
          timeout=None):
    """The results store: add documents, list runs/results, read-only SQL, export."""
    from bench.errors import UserError
    from testbed.store import cli, open_store

    try:
        f = _filters(device, workload, since, until, run, suite, vendor, image, driver, torch,
                     audit)
        if limit is not None and not str(limit).isdigit():
            raise UserError(f"--limit {limit!r} is not a count.", "Give a number (0: all).")
        n = None if limit is None else int(limit)
        if action == "add":
            _store_add([Path(target), *(Path(p) for p in path or [])], store)
        elif action == "list" and target == "tables":
            print(cli.schema_text())
        elif action == "list" and target in ("runs", "results"):
            with open_store(store, ROOT, read_only=True) as st:
                (cli.print_runs if target == "runs" else cli.print_results)(
                    st, f, 100 if n is None else n or None)
        elif action == "query":
            cli.query(store, ROOT, target, format, n or 10_000,
                      timeout_s=_seconds(timeout, "--timeout") if timeout else 120)
        elif action == "trust":
            from testbed.store.ingest import set_trust

            with open_store(store, ROOT) as st:
                signers, counts = set_trust(st, Path(target))
            names = sorted({p for sg in signers for p in sg.principals})
            print(f"store: trust file {target}: {len(signers)} key(s) of "
                  f"{', '.join(names[:8])}{' ...' if len(names) > 8 else ''}; signatures "
                  f"checked again: {counts.get('verified', 0)} verified, "
                  f"{counts.get('unverified', 0)} unverified, {counts.get('unsigned', 0)} "
                  "unsigned")
        elif action == "reader":
            from testbed.store.roles import create_reader

            with open_store(store, ROOT) as st:
                made = create_reader(st, target)
            print(f"store: role {target} {'created' if made else 'exists'}; it may read the "
                  f"store's tables in {st.location.shown} and nothing else (give it a password "
                  "or a pg_hba.conf entry as your server's other users have)")
        elif action == "export":
            if not (parquet or documents):
                raise UserError("`invoke store export DIR` needs --parquet, --documents or both.",
                                "--parquet writes one Parquet file per table; --documents the "
                                "original files byte for byte.")
            with open_store(store, ROOT, read_only=True) as st:
                cli.export(st, Path(target), f, parquet, documents)
        else:
            raise UserError(f"`invoke store {action} {target}` is not a store command.",
                            "Use: add PATH, list runs|results|tables, query SQL, export DIR, "
                            "reader ROLE, trust FILE.")
    except UserError as exc:
        raise _fail(exc) from exc


@task(
    iterable=["device", "workload"],
    help={"out": "directory to write the site into (opens from disk: DIR/index.html)",
          "baseline": "device filter naming the baseline device of the baseline-relative "
                      "scores",
          "store": STORE_HELP,
          **FILTER_HELP},
)
def site(c, out="site", baseline=None, store=None, device=None, workload=None, since=None,
         until=None, run=None, suite=None, vendor=None, image=None, driver=None, torch=None,
         audit=None):
    """Write the static leaderboard site from the store: per workload and per device."""
    from bench.errors import UserError
    from testbed.store import open_store
    from testbed.store.site import write_site

    try:
        f = _filters(device, workload, since, until, run, suite, vendor, image, driver, torch,
                     audit)
        with open_store(store, ROOT, read_only=True) as st:
            written = write_site(st, Path(out), f, baseline)
    except UserError as exc:
        raise _fail(exc) from exc
    print(f"site: {written.index}\n      {written.workloads} workload page(s), "
          f"{written.devices} device page(s), {written.documents} document(s), "
          f"{written.audits} audit verdict(s), {written.changes} change(s) "
          "(changes/<device>.html)")


@task(
    name="bench-store",
    help={"sizes": "document counts, comma-separated (default 1000,10000)",
          "work": "scratch directory (default a temporary one, removed at the end)",
          "site": "also time `invoke site` at the largest size (default on)"},
)
def bench_store(c, sizes="1000,10000", work=None, site=True):
    """Store figures: ingest time and size, a cross-run query, the site, at N documents."""
    from bench.errors import UserError
    from testbed.store.loadtest import main

    try:
        counts = [int(x) for x in sizes.split(",") if x.strip()]
    except ValueError as exc:
        raise _fail(UserError(f"--sizes {sizes!r} is not a list of counts.",
                              "Give counts like 1000,10000.")) from exc
    try:
        main(counts, Path(work) if work else None, site)
    except UserError as exc:
        raise _fail(exc) from exc


@task(name="bench-validate",
      help={"results": "generated results to time (default 300)",
            "rounds": "interleaved rounds (default 5)"})
def bench_validate(c, results=300, rounds=5):
    """Schema validation per document: jsonschema alone, jsonschema-rs alone, the test-bed's."""
    args = ["--results", str(results), "--rounds", str(rounds)]
    c.run(f"{PY} -m testbed.schema_speed " + shlex.join(args), pty=sys.stdout.isatty())


@task(
    name="bench-changes",
    help={"size": "results in the planted history (default 10000)",
          "work": "scratch directory, kept (default a temporary one, removed at the end)",
          "seed": "seed of the history (default 0)",
          "noise": "run-to-run spread of the figures (lognormal sigma, default 0.02)"},
)
def bench_changes(c, size=10_000, work=None, seed=0, noise=None):
    """Score `invoke changes` on a store with planted changes.

    Found per size, false alarms, time taken (docs/store.md)."""
    from bench.errors import UserError
    from testbed.store.changes_loadtest import main

    try:
        main(int(size), Path(work) if work else None, int(seed),
             0.02 if noise is None else float(noise))
    except (UserError, ValueError) as exc:
        raise _fail(exc) from exc


@task(name="function-catalogue",
      help={"out": "where to write it (default bench/function/catalogue.yaml)",
            "check": "only trace and report what the checked-in catalogue lacks (writes "
                     "nothing; exit 1 if anything is missing)"})
def function_catalogue(c, out=None, check=False):
    """Regenerate the operator catalogue from traces of every model workload.

    Traces every model workload and the long tail on the CPU and probes each call
    (docs/function.md)."""
    args = ["--check"] if check else ["--write", *(["--out", out] if out else [])]
    c.run(f"{PY} -m bench.tools.function_catalogue " + shlex.join(args), pty=sys.stdout.isatty())


@task(name="model-facts",
      help={"check": "only regenerate and list where bench/specs/model_facts.json differs "
                     "from the models (writes nothing; exit 1 if anything differs)"})
def model_facts(c, check=False):
    """Regenerate the model facts (FLOPs per item, parameters, configs) of every workload.

    Counted on the meta device; import and the report read them without building models."""
    c.run(f"{PY} -m bench.tools.model_facts " + ("--check" if check else "--write"),
          pty=sys.stdout.isatty())


@task(name="list")
def list_(c):
    """List vendors (and which are present), suites and workloads."""
    from bench.cli import main

    code = main(["list"])  # in this process: it imports no torch (detection runs in a child)
    if code:
        raise Exit(code=code)


@task(
    name="bench-telemetry",
    help={"vendor": "device backend whose telemetry adapter is measured (default cpu)",
          "workload": "workload run in the child process (default resnet infer, small config)",
          "rounds": "interleaved rounds (each runs every condition once, shuffled)",
          "round_s": "seconds per condition per round",
          "rates": "sampling rates in Hz, comma-separated (default 10,100)",
          "out": "also write the figures as JSON to this file"},
)
def bench_telemetry(c, vendor="cpu", workload="resnet", rounds=60, round_s=0.3, rates="10,100",
                    out=None):
    """Measure the telemetry sampler's overhead: interleaved A/B rounds, prints the ratio."""
    args = ["--device", vendor, "--workload", workload, "--rounds", str(rounds), "--round-s",
            str(round_s), "--rates", rates]
    if out:
        args += ["--out", out]
    c.run(f"{PY} -m bench.tools.telemetry_overhead " + shlex.join(args), pty=sys.stdout.isatty())


@task(help={"examples": "inputs in all, shared by the seven readers (default 10000)",
            "targets": "comma-separated: suite, validate, report, audit, import, ingest, site "
                       "(default all)",
            "seed": "a fixed seed, to repeat a run (default: fresh inputs)"})
def fuzz(c, examples=10_000, targets="suite,validate,report,audit,import,ingest,site",
         seed=None):
    """Fuzz every reader of other people's files (hypothesis): prints inputs tried and found."""
    args = ["--examples", str(examples), "--targets", targets]
    if seed is not None:
        args += ["--seed", str(seed)]
    result = c.run(f"{PY} -m tests.fuzz_inputs " + shlex.join(args), warn=True,
                   pty=sys.stdout.isatty())
    if result.exited:
        raise Exit(code=result.exited)


@task(help={"k": "only tests matching this expression (pytest -k)",
            "fast": "skip slow, docker and browser tests",
            "workers": "pytest-xdist worker processes (default 2, CI's cores; 0: one process)"})
def test(c, k=None, fast=False, workers=2):
    """Run the test suite in parallel worker processes; lists the 40 slowest tests."""
    args = ["-q", "--durations=40", "-n", str(int(workers))]
    if k:
        args += ["-k", k]
    if fast:
        args += ["-m", "not slow and not docker and not browser"]
    c.run(f"{PY} -m pytest " + shlex.join(args), pty=sys.stdout.isatty())


@task
def lint(c):
    """ruff, import rules (lint-imports), mypy on the document types, hadolint on Dockerfiles."""
    c.run(f"{PY} -m ruff check .")
    # The layers of docs/architecture.md, as contracts in pyproject.toml; import-linter needs
    # Python 3.11 (tests/test_imports.py checks the same layers on any Python).
    if sys.version_info >= (3, 11):
        lint_imports = Path(sys.executable).with_name("lint-imports")
        if not lint_imports.exists():
            raise Exit("error: lint-imports is not installed. Install the dev tools: "
                       "`bash scripts/setup.sh --dev`.", code=2)
        c.run(shlex.quote(str(lint_imports)), pty=sys.stdout.isatty())
    else:
        print("lint-imports: skipped (import-linter needs Python 3.11 or later)")
    if not Path(sys.executable).with_name("mypy").exists():
        raise Exit("error: mypy is not installed. Install the dev tools: "
                   "`bash scripts/setup.sh --dev`.", code=2)
    c.run(f"{PY} -m mypy")
    hadolint = Path(sys.executable).with_name("hadolint")
    if not hadolint.exists():
        raise Exit("error: hadolint is not installed. Install the dev tools: "
                   "`bash scripts/setup.sh --dev`.", code=2)
    dockerfiles = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "images").glob("*/Dockerfile"))
    c.run(f"{shlex.quote(str(hadolint))} " + shlex.join(dockerfiles))
    print(f"hadolint: {len(dockerfiles)} Dockerfile(s) clean")


@task(help={"vendor": vendor_list(" | "),
            "base": "base image: required where images/<vendor>/vendor.yaml names a "
                    "vendor-distributed base; IMAGE@sha256:... for public ones"})
def build(c, vendor="cpu", base=None):
    """Build a vendor's image from images/<vendor>/Dockerfile, tagged by its inputs' hash."""
    from bench.errors import UserError
    from testbed.images.run import build_vendor

    try:
        build_vendor(vendor, base)
    except UserError as exc:
        raise _fail(exc) from exc


@task(help={"vendor": vendor_list(" | ")})
def lock(c, vendor="cpu"):
    """Re-resolve images/<vendor>/requirements.lock (hash-pinned, for the image's Python)."""
    from bench.errors import UserError
    from testbed.images.lock import make_lock
    from testbed.images.spec import load_spec

    try:
        make_lock(load_spec(vendor))
    except UserError as exc:
        raise _fail(exc) from exc


@task(help={
    "model": "qwen2-0.5b, llama3-8b or glm4-9b",
    "architecture": "reduced (seconds on a CPU) or published (the real size)",
    "device": "vendor backend (default: what this machine has)",
    "precision": "fp32, tf32, bf16, fp16",
    "batch": "the grid point's concurrency",
    "input_tokens": "prompt tokens", "output_tokens": "generated tokens",
    "iterations": "generations per side per round", "rounds": "interleaved A/B rounds",
    "threads": "torch CPU threads (0: default; 1 on a shared CPU)",
})
def bench_llm_overhead(c, model="qwen2-0.5b", architecture="reduced", device="auto",
                       precision="fp32", batch=1, input_tokens=64, output_tokens=64,
                       iterations=3, rounds=9, threads=0):
    """LLM harness overhead: our grid point vs a bare `generate` loop, interleaved A/B."""
    args = ["--model", model, "--architecture", architecture, "--device", device,
            "--precision", precision, "--batch", str(batch), "--input-tokens",
            str(input_tokens), "--output-tokens", str(output_tokens), "--iterations",
            str(iterations), "--rounds", str(rounds), "--threads", str(threads)]
    c.run(f"{PY} -m bench.llm.overhead " + shlex.join(args), pty=sys.stdout.isatty())


@task(name="bench-train-overhead", help={
    "model": "llama3-8b, internlm-7b or gpt3-1.3b",
    "architecture": "reduced (seconds on a CPU) or published (the real size)",
    "device": "vendor backend (default: what this machine has)",
    "precision": "fp32, tf32, bf16, fp16",
    "seq_len": "tokens per sample", "batch": "samples per step",
    "steps": "training steps per side per round", "rounds": "interleaved A/B rounds",
    "threads": "torch CPU threads (0: default; 1 on a shared CPU)",
})
def bench_train_overhead(c, model="llama3-8b", architecture="reduced", device="auto",
                         precision="bf16", seq_len=64, batch=4, steps=10, rounds=15, threads=0):
    """Training harness overhead: our timed step vs a bare training loop, interleaved A/B."""
    args = ["--model", model, "--architecture", architecture, "--device", device,
            "--precision", precision, "--seq-len", str(seq_len), "--batch", str(batch),
            "--steps", str(steps), "--rounds", str(rounds), "--threads", str(threads)]
    c.run(f"{PY} -m bench.llm.train_overhead " + shlex.join(args), pty=sys.stdout.isatty())


@task(help={"models": "comma-separated workloads (default resnet,bert,qwen2-0.5b)",
            "rounds": "interleaved A B rounds per model (default 7)",
            "seconds": "timed window of each side per round (default 3)",
            "threads": "torch threads of both sides (0: torch's default)",
            "markdown": "also write the result table to this file"})
def bench_overhead(c, models="resnet,bert,qwen2-0.5b", rounds=7, seconds=3.0, threads=0,
                   markdown=None):
    """Harness overhead of a whole run against a bare loop of the same model.

    `python -m bench run` vs a bare loop, interleaved A B A B; the median ratio with its 95 %
    interval per model."""
    args = ["--models", models, "--rounds", str(rounds), "--seconds", str(seconds),
            "--threads", str(threads)]
    if markdown:
        args += ["--markdown", markdown]
    c.run(f"{PY} -m bench.overhead " + shlex.join(args), pty=sys.stdout.isatty())
