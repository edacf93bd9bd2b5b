"""A submitted run directory and its integrity: the checks that need nothing but the files.

Every document must match its schema and its own sha256; the manifest must list every result
with the hash the result holds (a document edited and re-sealed after the run still differs
from the manifest written during it); the results must agree on run, vendor, image, bench
version and sources; the seeds must be the suite's. The hashes are checksums, not signatures:
anyone can re-seal an edited file and its manifest, which is why the audit then re-measures.

The files are someone else's: each is read with ``bench.jsonio.read_json_file`` inside the
run directory (a symlink out of it, a FIFO, a device, an oversized or malformed document is a
failed check with its reason, never followed, never a hang), and no message quotes more than
a line of what a file holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.documents import ManifestDoc, Provenance, ResultDoc
from bench.errors import UserError, cut
from bench.ids import MANIFEST_FILE
from bench.jsonio import HASH_FIELD, UnreadableDocument, body_sha256, read_json_file
from bench.schema import validation_errors
from testbed.audit.checks import ANTI_GAMING, INTEGRITY, Check, failed, passed, skipped

MANIFEST = MANIFEST_FILE


@dataclass
class Submission:
    """What was submitted: the run directory, its manifest and the results that may be
    re-measured (those whose integrity checks passed)."""

    run_dir: Path
    manifest: ManifestDoc | None = None
    results: dict[str, ResultDoc] = field(default_factory=dict)  # entry id -> document
    only: str | None = None  # audit one result file of the run

    def first(self) -> ResultDoc | None:
        return next(iter(self.results.values()), None)

    @property
    def provenance(self) -> Provenance:
        doc = self.first()
        return (doc or {}).get("provenance") or {}

    @property
    def vendor(self) -> str | None:
        doc = self.first()
        return doc["provenance"]["vendor"] if doc else (self.manifest or {}).get("vendor")

    @property
    def run_id(self) -> str | None:
        return (self.manifest or {}).get("run_id")


def _read(path: Path, run_dir: Path) -> tuple[Any, str | None]:
    """A document of the run directory, or why it cannot be read (never followed out of it)."""
    try:
        return read_json_file(path, root=run_dir), None
    except UnreadableDocument as exc:
        return None, str(exc)


def _schema_check(doc: Any, schema: str, name: str) -> Check:
    problems = validation_errors(doc, schema)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return failed("schema", INTEGRITY, name,
                      f"breaks schemas/{schema}.schema.json at {problems[0]}{more}")
    return passed("schema", INTEGRITY, name, f"matches schemas/{schema}.schema.json")


def load_submission(path: Path) -> tuple[Submission, list[Check]]:
    """Read a run directory (or one result file of it) and check its integrity."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} does not exist.",
                        "Give a run directory (results/<run-id>/) or one result file in it.")
    only = None
    if path.is_file():
        only, path = path.name, path.parent
    elif not path.is_dir():
        raise UserError(f"{path} is neither a run directory nor a result file.",
                        "Give a run directory (results/<run-id>/) or one result file in it.")
    sub = Submission(run_dir=path, only=only)
    checks: list[Check] = []
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        checks.append(failed("manifest", INTEGRITY, str(manifest_path),
                             "no manifest.json: the run's own list of its results (and their "
                             "hashes) is missing, so a removed or added result cannot be "
                             "detected"))
    else:
        doc, problem = _read(manifest_path, path)
        if problem:
            checks.append(failed("manifest", INTEGRITY, MANIFEST, f"{MANIFEST} {problem}"))
        else:
            check = _schema_check(doc, "manifest", MANIFEST)
            checks.append(check)
            if check.status == "pass":
                sub.manifest = doc
                checks.append(
                    passed("run_state", INTEGRITY, MANIFEST, "the run finished")
                    if doc["state"] == "finished" else
                    failed("run_state", INTEGRITY, MANIFEST,
                           f"the run's state is {doc['state']!r}, not 'finished': an "
                           "interrupted or unfinished run is not a submission"))

    documents = _result_documents(path, only, checks)
    if sub.manifest is not None:
        _check_listing(path, sub.manifest, documents, only, checks)
    # The run's own order (the manifest's): the re-run keeps it, as it keeps everything else.
    order = [e["id"] for e in (sub.manifest or {}).get("entries", [])]
    for doc in sorted(documents.values(),
                      key=lambda d: _position(order, d["workload"]["id"])):
        sub.results[doc["workload"]["id"]] = doc
    if sub.results:
        checks += consistency_checks(sub)
        checks.append(suite_conformance(sub))
        for entry_id, doc in sub.results.items():
            checks.append(seed_check(entry_id, doc))
    elif not any(c.status == "fail" for c in checks):
        checks.append(failed("results", INTEGRITY, str(path), "no result documents to audit"))
    return sub, checks


def _position(order: list[str], entry_id: str) -> tuple[int, str]:
    return (order.index(entry_id) if entry_id in order else len(order), entry_id)


def _result_documents(run_dir: Path, only: str | None,
                      checks: list[Check]) -> dict[str, ResultDoc]:
    """Every result file that matches its schema and its own hash, by file name."""
    names = [only] if only else sorted(p.name for p in run_dir.glob("*.json")
                                       if p.name != MANIFEST and not p.name.startswith("."))
    out: dict[str, ResultDoc] = {}
    for name in names:
        doc, problem = _read(run_dir / name, run_dir)
        if problem:
            checks.append(failed("schema", INTEGRITY, name, f"{name} {problem}"))
            continue
        check = _schema_check(doc, "result", name)
        checks.append(check)
        if check.status != "pass":
            continue
        expected = body_sha256(doc)
        if doc[HASH_FIELD] != expected:
            checks.append(failed("sha256", INTEGRITY, name,
                                 f"the document's sha256 {doc[HASH_FIELD]} does not match its "
                                 f"body ({expected}): it was changed after it was written"))
            continue
        checks.append(passed("sha256", INTEGRITY, name, "sha256 matches the document body"))
        out[name] = doc
    return out


def _check_listing(run_dir: Path, manifest: ManifestDoc,
                   documents: dict[str, ResultDoc], only: str | None,
                   checks: list[Check]) -> None:
    """The manifest, written during the run, names each result file and its hash."""
    listed = {e["file"]: e for e in manifest["entries"] if e.get("file")}
    for entry in manifest["entries"]:
        name = entry.get("file")
        if only and name != only:
            continue
        if not name:
            checks.append(failed("manifest_listing", INTEGRITY, entry["id"],
                                 f"the run wrote no result for this entry (status "
                                 f"{entry['status']}: {entry.get('error', 'no document')}): "
                                 "the submission is incomplete, and nothing can vouch for it"))
            continue
        if name != f"{entry['id']}.json":
            checks.append(failed("manifest_listing", INTEGRITY, name,
                                 f"the manifest names {name} for entry {entry['id']!r}; the "
                                 f"harness writes {entry['id']}.json"))
            documents.pop(name, None)
            continue
        if not (run_dir / name).is_file():
            checks.append(failed("manifest_listing", INTEGRITY, name,
                                 f"the manifest lists {name} (entry {entry['id']}), and the "
                                 "file is missing from the run directory"))
            continue
        doc = documents.get(name)
        if doc is None:
            continue  # present but broken: its schema or hash check already failed
        if doc["workload"]["id"] != entry["id"]:
            checks.append(failed("manifest_listing", INTEGRITY, name,
                                 f"{name} holds entry {doc['workload']['id']!r}, the manifest "
                                 f"lists it for {entry['id']!r}"))
            del documents[name]
            continue
        if entry.get("sha256") != doc[HASH_FIELD]:
            checks.append(failed("manifest_listing", INTEGRITY, name,
                                 f"the manifest records sha256 {entry.get('sha256')} for "
                                 f"{name}, the file is sealed with {doc[HASH_FIELD]}: the "
                                 "document was edited and re-sealed after the run"))
            del documents[name]
            continue
        checks.append(passed("manifest_listing", INTEGRITY, name,
                             "listed in the manifest with this hash"))
    for name in list(documents):
        if name not in listed:
            checks.append(failed("manifest_listing", INTEGRITY, name,
                                 f"{name} is not listed in the manifest: it was added to the "
                                 "run directory after the run"))
            del documents[name]


def consistency_checks(sub: Submission) -> list[Check]:
    """One run: every result names the same run, vendor, image, bench version and sources."""
    fields = {
        "run_id": lambda d: d["run_id"],
        "vendor": lambda d: d["provenance"]["vendor"],
        "image digest": lambda d: d["provenance"]["image"]["digest"],
        "bench version": lambda d: d["provenance"]["bench_version"],
        "bench sources (source_sha256)": lambda d: d["provenance"]["source_sha256"],
        "git commit": lambda d: d["provenance"]["git"]["commit"],
        "suite": lambda d: d["suite"]["name"],
        "suite seed": lambda d: d["suite"].get("seed"),
        "run label": lambda d: d["provenance"].get("label"),
    }
    manifest = sub.manifest or {}
    expected = {"run_id": manifest.get("run_id"), "vendor": manifest.get("vendor"),
                "suite": (manifest.get("suite") or {}).get("name")}
    out = []
    for what, get in fields.items():
        values = {get(d) for d in sub.results.values()}
        if what in expected and expected[what] is not None:
            values.add(expected[what])
        if len(values) > 1:
            shown = ", ".join(cut(str(v), 100) for v in sorted(map(str, values))[:5])
            out.append(failed("consistency", INTEGRITY, what,
                              f"the results (and manifest) disagree on the {what}: "
                              f"{shown}; one run has one"))
        else:
            out.append(passed("consistency", INTEGRITY, what,
                              f"every result has the same {what}"))
    return out


def seed_check(entry_id: str, doc: ResultDoc) -> Check:
    """The seeds in the provenance are the suite's, one per repeat that ran."""
    seed = doc["suite"].get("seed")
    seeds = doc["provenance"]["seeds"]
    repeats = len(doc["repeats"])
    recorded = seeds.get("repeat_seeds")
    if seeds.get("suite_seed") != seed:
        return failed("seeds", ANTI_GAMING, entry_id,
                      f"provenance.seeds.suite_seed is {cut(repr(seeds.get('suite_seed')), 100)}"
                      f", the suite's seed is {seed!r}")
    if not isinstance(recorded, list) or len(recorded) != repeats or any(
            s != seed for s in recorded):
        return failed("seeds", ANTI_GAMING, entry_id,
                      f"provenance.seeds.repeat_seeds is {cut(repr(recorded), 100)}; the harness "
                      "seeds each "
                      f"of the {repeats} repeat(s) with the suite's seed {seed!r}")
    return passed("seeds", ANTI_GAMING, entry_id,
                  f"suite seed {seed} for all {repeats} repeat(s)")


def _only_ids(command: list[str]) -> list[str] | None:
    """The ``--only`` entry ids of the recorded ``bench run`` command line, if any."""
    for i, arg in enumerate(command):
        if arg == "--only" and i + 1 < len(command):
            return [t.strip() for t in command[i + 1].split(",") if t.strip()]
        if arg.startswith("--only="):
            return [t.strip() for t in arg.split("=", 1)[1].split(",") if t.strip()]
    return None


def suite_conformance(sub: Submission) -> Check:
    """A run of a bundled suite ran that suite: every entry (or those of its ``--only``), each
    with the suite's workload, mode, config, precision, parameters (plus the overrides the
    result declares) and rules. Without this, hand-edited parameters (a smaller batch, a
    shorter window) would be re-run as recorded and pass."""
    from bench.config import load_suite, split_overrides
    from bench.paths import SUITES_DIR
    from bench.provenance import source_sha256

    doc = next(iter(sub.results.values()))
    name, path = doc["suite"]["name"], Path(doc["suite"].get("path") or "")
    subject = f"suite {name}"
    if not (SUITES_DIR / f"{name}.yaml").is_file() or path.name != f"{name}.yaml" \
            or path.parent.name != "suites" or path.parent.parent.name != "bench":
        return skipped("suite_conformance", INTEGRITY, subject,
                       f"the run used its own suite file {path}: there is no reference to "
                       "compare its entries with (the re-run uses the recorded configuration)")
    if source_sha256() != doc["provenance"]["source_sha256"]:
        return skipped("suite_conformance", INTEGRITY, subject,
                       "this checkout's bench sources are not the submitted ones, so its copy "
                       f"of suite {name} may differ: check out commit "
                       f"{doc['provenance']['git'].get('commit')} to compare")
    suite = load_suite(name, vendor=sub.vendor)
    only = _only_ids(doc["provenance"].get("command") or [])
    wanted = {e.id: e for e in suite.entries if only is None or e.id in only}
    listed = [e["id"] for e in (sub.manifest or {}).get("entries", [])] or list(sub.results)
    problems = []
    if not sub.only:
        missing = sorted(set(wanted) - set(listed))
        extra = sorted(set(listed) - set(wanted))
        if missing:
            problems.append(f"entries {', '.join(missing)} of the suite are not in the run")
        if extra:
            problems.append(f"entries {', '.join(extra)} are not in the suite")
    if doc["suite"].get("seed") != suite.seed:
        problems.append(f"seed {doc['suite'].get('seed')!r}, the suite's is {suite.seed}")
    declared: set[str] = set()
    for entry_id, result in sub.results.items():
        entry = wanted.get(entry_id)
        if entry is None:
            continue
        w = result["workload"]
        overrides = {k: v for k, v in (w.get("overrides") or {}).items() if k != "workload"}
        declared.update(f"{entry_id}.{k}" for k in overrides)
        params, rules, compiled = split_overrides(overrides)
        want = {"workload": entry.workload, "mode": entry.mode, "config": entry.config,
                "precision_requested": entry.precision,
                "params": {**entry.params, **params},
                "rules": {**entry.rules.to_dict(), **rules},
                "compile": entry.compile if compiled is None else compiled,
                "scenario rules": entry.scenario_rules}
        have = {"workload": w["name"], "mode": w["mode"], "config": w["config"],
                "precision_requested": w["precision_requested"], "params": w["params"],
                "rules": {**entry.rules.to_dict(), **result["rules"]},
                "compile": bool((w.get("compile") or {}).get("requested", False)),
                "scenario rules": (result.get("scenario") or {}).get("rules")}
        differ = [k for k in want if want[k] != have[k]]
        problems += [f"{entry_id}: {k} {cut(repr(have[k]), 200)}, the suite says "
                     f"{cut(repr(want[k]), 200)}" for k in differ]
    if problems:
        return failed("suite_conformance", INTEGRITY, subject,
                      f"the results do not match bundled suite {name}: " + "; ".join(problems))
    return passed("suite_conformance", INTEGRITY, subject,
                  f"entries, parameters, precisions, rules and seed are suite {name}'s"
                  + (f" (--only {','.join(only)})" if only else "")
                  + (f", but for the declared overrides {', '.join(sorted(declared))}: those "
                     "results are not comparable" if declared else ""))
