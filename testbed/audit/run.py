"""``invoke audit``: integrity first, then the re-run, then the verdict document.

Order matters: when a file was edited, a hash is broken or the image is not the one the results
name, re-measuring proves nothing, so the audit stops there with a failing verdict (and says
the re-run was not attempted). Otherwise it re-runs the submitted configuration twice in the
submitted image (as submitted, and with distinct inputs for the caching check), watching the
host's load, judges every metric by the confidence interval of re-measured / submitted
(testbed.audit.interval), and re-runs the entries left inconclusive with more repeats, up to
the tolerance file's cap, before the verdict: pass, fail or inconclusive.
"""

from __future__ import annotations

import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import __version__
from bench.documents import (
    MetricRecord,
    NoiseSummary,
    ResultDoc,
    RuleChanges,
    SubmissionAllows,
    SubmissionDisturbed,
    VerdictDoc,
)
from bench.errors import UserError
from bench.ids import id_problem, slug
from bench.jsonio import atomic_write_json, sanitize, seal
from bench.paths import make_writable_dir
from bench.schema import validation_errors
from testbed.audit.checks import CATEGORIES, Check, any_failed, skipped
from testbed.audit.compare import (
    caching_check,
    compare_entry,
    output_length_checks,
    workload_identity_check,
)
from testbed.audit.hostload import HostMonitor, container_of, own_children, timed_windows
from testbed.audit.power import describe_allows, headline, power_summary, submission_allows
from testbed.audit.replay import (
    SUITE_FILE,
    Rerun,
    overrides_of,
    rerun,
    rerun_unavailable,
    suite_from_results,
    write_suite,
)
from testbed.audit.submission import Submission, load_submission
from testbed.audit.tolerances import Reruns, Tolerances, load_tolerances

AUDIT_SCHEMA_VERSION = "1.0"
SAME, DISTINCT, MORE = "as-submitted", "distinct-inputs", "more-evidence"
CANNOT_RERUN = "cannot_rerun"
METRIC_STATUSES = ("pass", "fail", "inconclusive", "not_judged", "ignored", "not_measured")
CHECK_STATUSES = ("pass", "fail", "inconclusive", "skipped")
# Exit codes of `invoke audit` (docs/audit.md): 2 is bad input, raised as a UserError, or a
# submission this machine cannot re-measure (no such device here).
EXIT_CODES = {"pass": 0, "fail": 1, "inconclusive": 3, CANNOT_RERUN: 2}


@dataclass
class AuditResult:
    verdict: VerdictDoc
    path: Path

    @property
    def passed(self) -> bool:
        return self.verdict["verdict"] == "pass"

    @property
    def cannot_rerun(self) -> bool:
        """Nothing failed, but this machine cannot re-measure the submission."""
        return self.verdict["verdict"] == CANNOT_RERUN

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict["verdict"]]


def caching_not_applicable(doc: ResultDoc) -> str | None:
    """Why the caching check cannot apply to this result (None: it applies)."""
    from bench.workloads import get_workload

    w = doc["workload"]
    if doc["status"] != "ok":
        return f"the submission did not measure it (status {doc['status']})"
    try:
        cls = get_workload(w["name"])
    except UserError as exc:
        return exc.what
    # The registry's group, never the document's (which workload_identity compares with it).
    if cls.group == "micro":
        # Like MLPerf's TEST04 exemptions: an operator benchmark measures the device with its
        # caches, and operands that fit in them are legitimately faster when repeated (GEMM
        # n<=512 on the reference CPU: +10..39 % with 16 copies), so the comparison would
        # accuse the hardware. Model workloads, where memoising would skip a whole forward
        # pass, are checked.
        return ("operator micro-benchmark: repeated operands stay in the device's caches, "
                "which is the hardware, not a cheat (the check applies to model workloads)")
    if w["params"].get("data") == "loader":  # what the re-run runs: rerun_config checks it
        return "loader mode: every batch already comes from the data set, none repeats"
    if doc.get("scenario"):
        return ("an MLPerf scenario: LoadGen draws every query from a library of "
                f"{doc['scenario']['rules'].get('performance_sample_count')} distinct samples "
                "on the device, so no single input repeats back to back")
    if not getattr(cls, "input_attrs", ()) and not getattr(cls, "varies_inputs", False):
        return (f"{w['name']} has no synthetic input batch to vary (its measurement is not a "
                "loop over one input)")
    return None


def default_out(sub: Submission, root: Path) -> Path:
    """``<root>/<run-id>-audit-<time>-<random>``: the run id is the submitter's, so it is used
    only when it is a path id (bench.ids); the directory is always directly under ``root``."""
    stamp = datetime.now(tz=timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name = sub.run_id if id_problem(sub.run_id) is None else slug(sub.run_dir.resolve().name)
    return root / f"{name}-audit-{stamp}-{uuid.uuid4().hex[:4]}"


def audit(run_path: Path, out_root: Path, image: str | None = None,
          tolerance: Path | None = None, native: bool = False,
          out: Path | None = None, sign: Path | None = None) -> AuditResult:
    """Audit a run directory (or one result file of it); writes ``verdict.json``, signed
    with the SSH key ``sign`` when given (testbed.signing: the results store counts only a
    verdict signed by a key of its trust file as an audit)."""
    started = time.time()
    if sign is not None:
        from testbed.signing import check_key

        sign = check_key(sign)  # before the work: a typo must not cost a re-run
    if native and image:
        raise UserError("--image and --native exclude each other: --native re-runs in this "
                        "Python environment, not in an image.",
                        "Drop one of them.")
    tol = load_tolerances(tolerance)
    sub, checks = load_submission(run_path)
    out_dir = Path(out) if out else default_out(sub, out_root)
    _refuse_used(out_dir)
    client, choice = None, None
    if sub.results:
        if native:
            from testbed.audit.image import native_checks

            checks += native_checks(sub)
        else:
            from testbed.audit.image import image_checks, require_image
            from testbed.images.engine import connect

            require_image(sub)
            client = connect()
            image_checks_, choice = image_checks(client, sub, image)
            checks += image_checks_
        for entry_id, doc in sub.results.items():
            checks.append(workload_identity_check(entry_id, doc))
            checks += output_length_checks(entry_id, doc, "submitted")

    unavailable = None
    if sub.results and not any_failed(checks):
        unavailable = rerun_unavailable(sub.vendor or "cpu", native)
    allows = _allows(sub, tol)
    if sub.results and not any_failed(checks) and not unavailable:
        for line in map(describe_allows, allows):  # up front: what the submission allows
            print(f"the submission allows: {line}", flush=True)
    _prepare(out_dir)
    reruns: list[Rerun] = []
    records: list[MetricRecord] = []
    if not sub.results or any_failed(checks):
        note = ("not attempted: the integrity or image checks above failed, so a "
                "re-measurement could not vouch for these files")
        checks.append(skipped("rerun", "rerun", str(sub.run_dir), note))
    elif unavailable:
        checks.append(skipped("rerun", "rerun", str(sub.run_dir),
                              f"cannot re-run here: {unavailable}"))
    else:
        reruns, rerun_checks, records = _rerun_and_compare(sub, tol, out_dir, native,
                                                           choice.ref if choice else None)
        checks += rerun_checks
    if client is not None:
        client.close()
    verdict = _verdict(sub, checks, records, reruns, tol, native, choice, image, started,
                       out_dir, unavailable, allows)
    path = out_dir / "verdict.json"
    unsigned = None
    if sign is not None:
        from testbed.signing import sign_document

        try:
            verdict = sign_document(verdict, sign, "audit")
        except UserError as exc:  # the verdict is still written: nothing measured is lost
            unsigned = exc
    try:
        atomic_write_json(path, verdict)
    except OSError as exc:
        raise UserError(f"Cannot write the verdict {path}: {exc.strerror or exc}.",
                        "Choose another audit directory with --out DIR.") from exc
    if unsigned is not None:
        raise UserError(f"{unsigned.what} The verdict {path} was written unsigned.",
                        f"Sign it when the key works: `invoke sign {path} --key KEY`.")
    return AuditResult(verdict, path)


def _allows(sub: Submission, tol: Tolerances) -> list[SubmissionAllows]:
    """What each submitted entry's repeats let the audit detect, before re-running."""
    out = []
    for entry_id, doc in sub.results.items():
        rule = tol.rule_for("throughput_items_per_s", sub.vendor)
        most = int(doc["rules"]["repeats"]) + tol.reruns.max * rerun_repeats(doc, tol.reruns)
        out.append(submission_allows(entry_id, doc, rule.rel if rule else None,
                                     tol.statistics.confidence, most))
    return out


def _refuse_used(out_dir: Path) -> None:
    """A new (or empty) audit directory: an earlier verdict is never overwritten."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"Audit directory {out_dir} is a file.",
                        "Name a new directory with --out DIR (or leave it out).")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise UserError(f"Audit directory {out_dir} is not empty.",
                        "Leave out --out (a new audits/<run-id>-audit-<time>/ is made) or name "
                        "a new directory.")


def _prepare(out_dir: Path) -> None:
    _refuse_used(out_dir)
    make_writable_dir(out_dir, "Audit directory", "Choose another with --out DIR.")


def rerun_repeats(doc: ResultDoc, settings: Reruns) -> int:
    """The most repeats one re-run for more evidence of this entry may have: the tolerance
    file's ``reruns.repeats``, at least the submitted number."""
    return max(settings.repeats, int(doc["rules"]["repeats"]))


def more_evidence_rules(doc: ResultDoc, settings: Reruns,
                        needed: int | None = None) -> RuleChanges:
    """The rules of a re-run for more evidence: the repeats that can decide what is left
    (``needed``, at least 2, at most ``rerun_repeats``) and, where the timed window is a
    duration, a longer one (and a timeout to match). A window of a fixed number of
    iterations (``min_duration_s: 0``) is a protocol: kept."""
    rules = doc["rules"]
    most = rerun_repeats(doc, settings)
    out: RuleChanges = {"repeats": most if needed is None else max(2, min(needed, most))}
    if rules.get("min_duration_s", 0) > 0 and settings.window_factor > 1:
        out["min_duration_s"] = rules["min_duration_s"] * settings.window_factor
        out["timeout_s"] = rules["timeout_s"] * settings.window_factor
    return out


def _worth_deciding(record: MetricRecord, held: bool) -> bool:
    return record["status"] == "inconclusive" and bool(record.get("decidable")) and (
        not held or record.get("predicted") == "fail")


def verdict_held(records: list[MetricRecord], checks: list[Check]) -> bool:
    """Whether the verdict is already at least inconclusive whatever more evidence gives: a
    metric or check is inconclusive and nothing left can decide it. Then only a predicted
    fail can still change the verdict; a predicted pass would leave it inconclusive."""
    return any(r["status"] == "inconclusive" and not r.get("decidable") for r in records) \
        or any(c.status == "inconclusive" for c in checks)


def wants_more_evidence(records: list[MetricRecord], held: bool = False) -> bool:
    """An entry is re-run again while one of its metrics is inconclusive and the re-run
    repeats the tolerances still allow could decide it (a pass or a fail at the same
    estimate and spread), and while that decision could change the verdict (``held``: the
    verdict stays inconclusive anyway, so only a predicted fail counts): as soon as nothing
    left can change it, re-running stops."""
    return any(_worth_deciding(r, held) for r in records)


def repeats_wanted(records: list[MetricRecord], held: bool = False) -> int | None:
    """How many more repeats the entry's undecided metrics need (the most any needs)."""
    wanted = [r.get("repeats_to_decide") or 0 for r in records if _worth_deciding(r, held)]
    return max(wanted) if wanted else None


def _rerun_and_compare(sub: Submission, tol: Tolerances, out_dir: Path, native: bool,
                       image_ref: str | None
                       ) -> tuple[list[Rerun], list[Check], list[MetricRecord]]:
    entries = list(sub.results)
    spread = {e: (d.get("placement") or {}).get("nnodes", 1) for e, d in sub.results.items()}
    if any(n > 1 for n in spread.values()):
        several = ", ".join(f"{e} ({n} nodes)" for e, n in spread.items() if n > 1)
        raise UserError(f"{several} ran on several nodes of a cluster; a re-run on this machine "
                        "would measure something else.",
                        "Re-running a multi-node run on its cluster is not built yet: audit "
                        "the single-node entries (a run of them alone), see docs/cluster.md.")
    vendor = sub.vendor or "cpu"
    label = sub.provenance.get("label")
    why_not = {e: caching_not_applicable(sub.results[e]) for e in entries}
    varied = [e for e in entries if why_not[e] is None]

    launcher = "native" if native else "container"  # testbed.launch.launcher_for

    def run(name: str, ids: list[str], extra: dict[str, RuleChanges] | None = None
            ) -> Rerun:
        suite_file = write_suite(out_dir / f"{name}-{SUITE_FILE}",
                                 suite_from_results(sub, ids, extra))
        target = out_dir / name
        sets = overrides_of(sub, ids, extra)
        with HostMonitor(own_children if native else container_of(target)) as monitor:
            result = rerun(launcher, suite_file, target, vendor, sets, label, name,
                           None if native else image_ref)
        result.rules = extra or {}
        result.host = monitor.report({e: timed_windows(d) for e, d in result.results.items()})
        return result

    same = run(SAME, entries)
    reruns = [same]
    distinct = None
    if varied:
        distinct = run(DISTINCT, varied, {e: {"input_variants": tol.input_variants}
                                          for e in varied})
        reruns.append(distinct)
    rounds = {e: [same.results[e]] if e in same.results else [] for e in entries}
    slowdown = {e: same.load_factor(e) for e in entries}

    def budget(e: str, done: int) -> int:
        return (tol.reruns.max - done) * rerun_repeats(sub.results[e], tol.reruns)

    compared = {e: compare_entry(e, sub.results[e], rounds[e] or None, tol, same.error,
                                 slowdown[e], budget(e, 0)) for e in entries}
    for n in range(1, tol.reruns.max + 1):
        held = any(verdict_held(compared[e][1], compared[e][0]) for e in entries)
        pending = [e for e in entries
                   if rounds[e] and wants_more_evidence(compared[e][1], held)]
        if not pending:
            break
        print(f"more evidence ({n} of at most {tol.reruns.max}): inconclusive metrics that "
              f"more repeats can decide in {', '.join(pending)}"
              + (" (only those predicted to fail: the verdict stays inconclusive anyway)"
                 if held else ""), flush=True)
        more = run(f"{MORE}-{n}", pending,
                   {e: more_evidence_rules(sub.results[e], tol.reruns,
                                           repeats_wanted(compared[e][1], held))
                    for e in pending})
        reruns.append(more)
        for e in pending:
            doc = more.results.get(e)
            if doc is not None and doc["status"] == rounds[e][0]["status"]:
                rounds[e].append(doc)
                slowdown[e] = max(slowdown[e], more.load_factor(e))
            compared[e] = compare_entry(e, sub.results[e], rounds[e], tol, same.error,
                                        slowdown[e], budget(e, n))
            if doc is None or doc["status"] != rounds[e][0]["status"]:
                compared[e][0].append(skipped(
                    "rerun_status", "rerun", f"{e} ({more.name})",
                    "this re-run for more evidence " + (
                        f"ended with status {doc['status']!r}" if doc else
                        f"wrote no result ({more.error or 'no document'})")
                    + ": left out of the evidence"))
    checks: list[Check] = []
    records: list[MetricRecord] = []
    for entry_id in entries:
        entry_checks, entry_records = compared[entry_id]
        checks += entry_checks
        records += entry_records
        re_doc = same.results.get(entry_id)
        if re_doc is not None:
            checks += output_length_checks(entry_id, re_doc, "re-run")
        checks.append(caching_check(entry_id, re_doc,
                                    distinct.results.get(entry_id) if distinct else None,
                                    tol, why_not[entry_id],
                                    distinct.load_factor(entry_id) if distinct else 1.0))
    return reruns, checks, records


def noise_summary(records: list[MetricRecord], reruns: list[Rerun],
                  tol: Tolerances) -> NoiseSummary:
    """Whether the machine was too noisy to judge: a re-run the host's load slowed more than
    the bound, or a metric whose re-measured repeats spread more than the bound; and which
    metrics that left undecided."""
    why = []
    slowed: set[str] = set()
    for r in reruns:
        host = r.host or {}
        if r.load_factor() > tol.noise.max_slowdown:
            slowed.update(e for e in r.results if r.load_factor(e) > tol.noise.max_slowdown)
            other = host.get("other_cpus_mean")
            load = (host.get("load_avg_1m") or {}).get("max")
            why.append(f"re-run {r.name}: the host's load slowed its timed windows "
                       f"x{r.slowdown():.2f}, up to x{r.load_factor():.2f} with the caches "
                       f"and memory other processes shared (bound "
                       f"x{tol.noise.max_slowdown:g})"
                       + (f"; other processes kept {other:.1f} of {host['cpus']} CPUs busy"
                          if other is not None else "")
                       + (f"; load average up to {load:.1f}" if load is not None else ""))
    noisy = []
    for m in records:
        spread = (m.get("interval") or {}).get("cv_remeasured")
        if spread is not None and spread > tol.noise.max_cv and m["status"] in (
                "inconclusive", "fail", "pass"):
            noisy.append(m)
            why.append(f"{_where(m)}: re-measured repeats spread CV {spread:.0%} (bound "
                       f"{tol.noise.max_cv:.0%})")
    affected = [_where(m) for m in records if m["status"] == "inconclusive" and (
        m["entry"] in slowed or m in noisy or "too noisy" in m["reason"])]
    return {"too_noisy": bool(why), "reasons": why, "affected": affected,
            "max_cv": tol.noise.max_cv, "max_slowdown": tol.noise.max_slowdown}


DISTURBED_NOTE = ("the submission was disturbed: weak evidence. Its own record says other "
                  "processes, steal, throttling or a repeat spread disturbed its measurement, "
                  "so its figures are not the device's: a pass confirms less than usual, and a "
                  "re-run that does better than it claims is expected")


def submission_disturbed(sub: Submission) -> SubmissionDisturbed | None:
    """The submitted results that say they were disturbed while they measured (their
    ``disturbed`` record; a result without one says nothing either way)."""
    entries = []
    for entry_id, doc in sorted(sub.results.items()):
        record = doc.get("disturbed")
        if isinstance(record, dict) and record.get("value") is True:
            entries.append({"entry": entry_id, "reasons": [
                str(r.get("message")) for r in record.get("reasons") or [] if isinstance(r, dict)]})
    return {"entries": entries, "note": DISTURBED_NOTE} if entries else None


def _where(m: MetricRecord) -> str:
    return f"{m['entry']}{' ' + str(m['point']) if m['point'] else ''} {m['metric']}"


def _verdict(sub: Submission, checks: list[Check], records: list[MetricRecord],
             reruns: list[Rerun], tol: Tolerances, native: bool, choice: Any,
             image_arg: str | None, started: float, out_dir: Path,
             unavailable: str | None = None,
             allows: list[SubmissionAllows] | None = None) -> VerdictDoc:
    failed_checks = [c for c in checks if c.status == "fail"]
    reasons = [f"{c.category}/{c.id} {c.subject}: {c.message}" for c in failed_checks]
    reasons += [f"metric {_where(r)}: {r['reason']}" for r in records if r["status"] == "fail"]
    cannot_rerun = not reasons and unavailable is not None
    if cannot_rerun:
        reasons = [f"cannot re-run here: {unavailable}"]
    elif not reasons and not reruns:
        reasons = ["nothing was re-measured"]
    undecided = [f"{c.category}/{c.id} {c.subject}: {c.message}" for c in checks
                 if c.status == "inconclusive"]
    undecided += [f"metric {_where(r)}: {r['reason']}" for r in records
                  if r["status"] == "inconclusive"]
    prov = sub.provenance
    count = {s: sum(1 for r in records if r["status"] == s) for s in METRIC_STATUSES}
    verdict = (CANNOT_RERUN if cannot_rerun else "fail" if reasons
               else "inconclusive" if undecided else "pass")
    doc = {
        "schema_version": AUDIT_SCHEMA_VERSION,
        "kind": "bench.audit",
        "audit_version": __version__,
        "submitted": {
            "path": str(sub.run_dir), "only": sub.only, "run_id": sub.run_id,
            "vendor": sub.vendor, "results": sorted(sub.results),
            "result_sha256": {e: doc.get("sha256") for e, doc in sorted(sub.results.items())},
            "image": prov.get("image"), "bench_version": prov.get("bench_version"),
            "git_commit": (prov.get("git") or {}).get("commit"),
            "source_sha256": prov.get("source_sha256"),
        },
        "mode": "native" if native else "container",
        "image": None if native else {
            "requested": image_arg, "ref": getattr(choice, "ref", None),
            "digest": getattr(choice, "digest", None),
            "labels": getattr(choice, "labels", {}) or {}},
        "tolerances": tol.as_dict(),
        "checks": [c.as_dict() for c in checks],
        "metrics": records,
        "reruns": [r.as_dict() for r in reruns],
        "summary": {
            "checks": {cat: {s: sum(1 for c in checks if c.category == cat and c.status == s)
                             for s in CHECK_STATUSES} for cat in CATEGORIES},
            "metrics": count,
            "reasons": reasons,
            "inconclusive": undecided,
            "noise": noise_summary(records, reruns, tol),
            **({"submission_disturbed": disturbed} if (disturbed := submission_disturbed(sub))
               else {}),
            "power": power_summary(records, allows or []),
        },
        "verdict": verdict,
        "out_dir": str(out_dir),
        "started_at": _iso(started),
        "ended_at": _iso(time.time()),
    }
    doc = seal(sanitize(doc))
    problems = validation_errors(doc, "audit")
    if problems:  # our own bug: say so loudly rather than write an unverifiable verdict
        raise RuntimeError("verdict breaks schemas/audit.schema.json: "
                           + "; ".join(map(str, problems[:3])))
    return doc


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")


def print_summary(result: AuditResult, stream: Any = None) -> None:
    out = stream or sys.stdout
    v = result.verdict
    s = v["submitted"]
    image = s["image"] or {}
    where = "natively" if v["mode"] == "native" else f"in {v['image']['ref'] or image.get('tag')}"
    print(f"audit of {s['path']}: {len(s['results'])} result(s), vendor {s['vendor']}, "
          f"image {image.get('tag') or '(native)'} {image.get('digest') or ''}".rstrip(),
          file=out)
    print(f"re-measured {where}; tolerances {v['tolerances']['path']}", file=out)
    names = {"integrity": "integrity", "image": "image", "anti_gaming": "anti-gaming",
             "rerun": "re-run"}
    for cat, counts in v["summary"]["checks"].items():
        print(f"  {names[cat]:<12} {counts['pass']:>3} pass  {counts['fail']:>3} fail  "
              + (f"{counts['inconclusive']:>3} inconclusive  " if counts["inconclusive"]
                 else "") + f"{counts['skipped']:>3} skipped", file=out)
    m = v["summary"]["metrics"]
    print(f"  {'metrics':<12} {m['pass']:>3} pass  {m['fail']:>3} fail  "
          f"{m['inconclusive']:>3} inconclusive  {m['not_judged']:>3} not judged  "
          f"{m['ignored']:>3} ignored  {m['not_measured']:>3} not measured", file=out)
    more = [r for r in v["reruns"] if r["name"].startswith(MORE)]
    if more:
        print(f"  {len(more)} re-run(s) for more evidence: "
              + "; ".join(f"{r['name']} ({', '.join(r['results']) or 'no result'})"
                          for r in more), file=out)
    tag = "FAIL" if v["verdict"] == "fail" else "NOTE"
    for label, lines in ((tag, v["summary"]["reasons"]),
                         ("INCONCLUSIVE", v["summary"]["inconclusive"])):
        for line in lines[:20]:
            print(f"  {label} {line}", file=out)
        if len(lines) > 20:
            print(f"  ... {len(lines) - 20} more in the verdict", file=out)
    power = headline(v["summary"]["power"])
    if power:
        print(f"  {power}", file=out)
    noise = v["summary"]["noise"]
    if noise["too_noisy"]:
        print("  too noisy to judge: " + "; ".join(noise["reasons"][:6])
              + (f" (and {len(noise['reasons']) - 6} more)" if len(noise["reasons"]) > 6
                 else ""), file=out)
        if noise["affected"]:
            print(f"    metrics left undecided by the noise: {', '.join(noise['affected'])}",
                  file=out)
    disturbed = v["summary"].get("submission_disturbed")
    if disturbed:
        print(f"  NOTE {disturbed['note']}: "
              + "; ".join(f"{d['entry']} ({'; '.join(d['reasons']) or 'no reason recorded'})"
                          for d in disturbed["entries"]), file=out)
    print(f"verdict: {v['verdict'].upper()}  ({result.path})", file=out)
