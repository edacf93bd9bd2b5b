"""One way to start a run, whoever runs it: this machine's Python, the vendor's image, a Slurm job.

Every caller that starts a run (``invoke bench``, the audit's re-runs) builds one
``RunRequest`` and gets its launcher from ``testbed.launch.launcher_for``; the launcher decides
where ``python -m bench run`` executes and returns a ``RunOutcome``. The command line of the
bench itself is built in one place (``RunRequest.bench_args``), so a run means the same thing
on every launcher.

Every launcher is the same template (``Launcher.launch``): **check** the request (every
refusal, a ``UserError``, before anything is written or started), **execute** it (the one
part a launcher writes itself) and **accept** what it wrote by one policy
(``accept_results``): every document of the run directory but the manifest is validated
again here (schema, seal, confinement to the directory, and for a container the image it
must name); one that fails is renamed ``<name>.json.rejected`` (never deleted, never read
as a result), its manifest entry says why, and the run's exit code is at least 1, so the
report and the store go on with the rest (docs/architecture.md, "Launchers").

A new engine (Kubernetes: an indexed Job per entry, docs/cluster.md) is one more subclass:
it receives the same request and must leave the same run directory behind.
"""

from __future__ import annotations

import os
import sys
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from bench.config import DeviceSettings

LAUNCHERS = ("native", "container", "slurm")
REJECTED_SUFFIX = ".rejected"


@dataclass(frozen=True)
class RunRequest:
    """What to run: the same for every launcher (the launcher's own settings are its own)."""

    suite: str
    vendor: str = "auto"
    out: Path | None = None
    only: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()
    label: str | None = None
    devices: tuple[int, ...] | None = None
    image: str | None = None
    run_id: str | None = None
    # host threads and CPU pinning of the run's processes (--threads, --cpus)
    device: DeviceSettings = field(default_factory=DeviceSettings)
    # a name for progress lines (the audit's re-runs: "as-submitted", "distinct-inputs")
    name: str = ""
    # a disturbed entry is an error, not a warning (--require-quiet)
    require_quiet: bool = False
    # where it runs: native (this Python), container (the vendor's image) or slurm
    launcher: str = "container"

    def __post_init__(self) -> None:
        if self.launcher not in LAUNCHERS:
            raise ValueError(f"launcher must be one of {LAUNCHERS}, got {self.launcher!r}")

    def suite_stem(self) -> str:
        return Path(self.suite).stem

    def bench_args(self, device: str, run_id: str, suite: str | None = None,
                   extra: tuple[str, ...] = ()) -> list[str]:
        """``python -m bench`` arguments of this run, but for where it writes (``--out``,
        which each launcher adds: a path here, ``/results`` in a container, the node's
        directory on a cluster). ``suite`` where the launcher moves the suite file."""
        args = ["run", "--suite", suite or self.suite, "--device", device, "--run-id", run_id]
        if self.only:
            args += ["--only", ",".join(self.only)]
        for item in self.overrides:
            args += ["--set", item]
        if self.label is not None:
            args += ["--label", self.label]
        if self.require_quiet:
            args.append("--require-quiet")
        return [*args, *self.device.cli_args(), *extra]

    def to_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "vendor": self.vendor,
                "out": str(self.out) if self.out else None, "only": list(self.only),
                "overrides": list(self.overrides), "label": self.label,
                "devices": list(self.devices) if self.devices is not None else None,
                "image": self.image, "run_id": self.run_id, "name": self.name,
                "device": self.device.as_dict(), "require_quiet": self.require_quiet,
                "launcher": self.launcher}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRequest:
        return cls(suite=data["suite"], vendor=data.get("vendor", "auto"),
                   out=Path(data["out"]) if data.get("out") else None,
                   only=tuple(data.get("only") or ()),
                   overrides=tuple(data.get("overrides") or ()), label=data.get("label"),
                   devices=tuple(data["devices"]) if data.get("devices") is not None else None,
                   image=data.get("image"), run_id=data.get("run_id"),
                   name=data.get("name", ""),
                   device=DeviceSettings.from_dict(data.get("device")),
                   require_quiet=bool(data.get("require_quiet", False)),
                   launcher=data.get("launcher", "container"))


@dataclass
class RunOutcome:
    """How a run ended: its directory, the exit code (0 ok, 1 a workload failed or a result
    was rejected, 2 refused before it started, 130 interrupted) and why, where the launcher
    knows more than the code says. ``rejected``: one line per document set aside."""

    out_dir: Path
    exit_code: int
    interrupted: bool = False
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)


@dataclass
class Plan:
    """A checked request, ready to execute: nothing has been written or started yet.

    ``request`` is the caller's with the vendor resolved (``auto``: this machine's) and the
    run id and directory set; ``own`` is what the launcher prepared for itself (the
    container's image and options, the Slurm job)."""

    request: RunRequest
    suite: Any  # bench.config.Suite
    own: Any = None

    @property
    def vendor(self) -> str:
        return self.request.vendor

    @property
    def run_id(self) -> str:
        assert self.request.run_id is not None
        return self.request.run_id

    @property
    def out_dir(self) -> Path:
        assert self.request.out is not None
        return self.request.out


@dataclass
class Ran:
    """What ``execute`` saw: the bench's (or the job's) exit code and why."""

    exit_code: int
    interrupted: bool = False
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Launcher(ABC):
    """Starts one run: ``launch`` = check -> execute -> accept; subclasses in this package
    (native, container, slurm) write ``execute`` and their own checks."""

    name: ClassVar[str]
    # vendor "auto": this machine's (detected), or a refusal saying why the vendor is needed
    detects: ClassVar[bool] = False
    needs_vendor: ClassVar[tuple[str, str]] = ("This run needs --vendor.", "Give one of {}.")

    def __init__(self, results_root: Path) -> None:
        self.results_root = results_root

    def run_dir(self, request: RunRequest, vendor: str) -> tuple[str, Path]:
        """The run id and directory: the request's, or results/<time>-<vendor>-<suite>-<hex>."""
        from bench.runner import new_run_id

        run_id = request.run_id or new_run_id(vendor, request.suite_stem())
        return run_id, request.out or self.results_root / run_id

    def launch(self, request: RunRequest) -> RunOutcome:
        """Run the request to its end. Bad input is a ``UserError`` before anything starts;
        once the run has started nothing raises: how it went is the outcome."""
        plan = self.check(request)
        ran = self.execute(plan)
        return self.accept(plan, ran)

    # -- check: the same refusals, in the same order, on every launcher -----------------------
    def check(self, request: RunRequest) -> Plan:
        """Every refusal, before anything is written: the vendor, the launcher's own options,
        the suite with ``--only`` and ``--set``, the label, a used run directory; then what
        the launcher prepares (its image, its job), still writing nothing."""
        from bench.config import load_suite
        from bench.ids import check_label
        from bench.rundir import refuse_used_out_dir

        vendor = self.vendor_of(request)
        self.check_own(request, vendor)
        suite = load_suite(request.suite, overrides=list(request.overrides),
                           only=list(request.only) or None, vendor=vendor,
                           device=request.device)
        if request.label is not None:
            check_label(request.label)
        run_id, out = self.run_dir(request, vendor)
        refuse_used_out_dir(out)
        plan = Plan(replace(request, vendor=vendor, run_id=run_id, out=out,
                            launcher=self.name), suite)
        plan.own = self.prepare(plan)
        return plan

    def vendor_of(self, request: RunRequest) -> str:
        from bench.errors import UserError
        from bench.vendors import VENDORS
        from testbed.images.spec import unknown_vendor

        vendor = request.vendor
        if vendor == "auto":
            if not self.detects:
                what, fix = self.needs_vendor
                raise UserError(what, fix.format(", ".join(VENDORS)))
            from bench.devices import detect

            vendor = detect()
        if vendor not in VENDORS:
            raise unknown_vendor(vendor)
        return vendor

    def check_own(self, request: RunRequest, vendor: str) -> None:
        """The launcher's own refusals (its options, what it cannot pass on); none here."""
        return None

    def prepare(self, plan: Plan) -> Any:
        """What ``execute`` needs beyond the plan (an image, a job), found or derived without
        writing anything; refusals are ``UserError``."""
        return None

    # -- execute: where the bench runs ---------------------------------------------------------
    @abstractmethod
    def execute(self, plan: Plan) -> Ran:
        """Run ``python -m bench run`` for the plan, writing into ``plan.out_dir``. It may
        still refuse (``UserError``) before anything starts; never after."""

    def expected_image(self, plan: Plan) -> tuple[str, str] | None:
        """The (tag, digest) every result must name (a container run), or None."""
        return None

    # -- accept: one policy for every launcher -------------------------------------------------
    def accept(self, plan: Plan, ran: Ran) -> RunOutcome:
        out = plan.out_dir
        rejected = accept_results(out, self.expected_image(plan))
        return settle(out, ran, rejected, self.expected_image(plan))


def settle(out_dir: Path, ran: Ran, rejected: list[str],
           image: tuple[str, str] | None = None) -> RunOutcome:
    """The outcome of a run whose results were accepted: say what was set aside (or that
    everything validated), and make the exit code at least 1 when anything was."""
    code, error = ran.exit_code, ran.error
    if rejected:
        print(f"error: {len(rejected)} result(s) in {out_dir} failed validation on the host and "
              f"were set aside (renamed *.json{REJECTED_SUFFIX}; the report and the store read "
              "the rest):\n  " + "\n  ".join(rejected), file=sys.stderr, flush=True)
        code = max(code, 1)
        said = f"{len(rejected)} result(s) failed validation and were set aside"
        error = f"{error}; {said}" if error else said
    elif out_dir.is_dir() and any(out_dir.glob("*.json")):
        names = f" and names image {image[1]}" if image else ""
        print(f"validated: every result in {out_dir} matches schemas/result.schema.json{names}",
              flush=True)
    return RunOutcome(out_dir, code, interrupted=ran.interrupted, error=error,
                      details=ran.details, rejected=rejected)


def accept_results(out_dir: Path, image: tuple[str, str] | None = None) -> list[str]:
    """The acceptance policy of every launcher (and of ``invoke gather``), run on the host
    after the run: every ``*.json`` of the run directory but the manifest must be a valid,
    sealed result inside the directory (and, for a container run, name the ``image``
    (tag, digest) it ran in). One that is not is renamed ``<name>.json.rejected`` (kept, never
    read as a result: the report, the store and the audit read ``*.json``), and its manifest
    entry becomes an error naming the file and the problems. Returns one line per rejected
    file; the files below the directory (a Slurm run's node results) are not touched."""
    from bench.ids import MANIFEST_FILE
    from bench.schema import SchemaProblem
    from bench.validate import validate_file

    if not out_dir.is_dir():
        return []
    messages: list[str] = []
    set_aside: dict[str, tuple[str, list[str]]] = {}  # file name -> (its new name, problems)
    for path in sorted(out_dir.glob("*.json")):  # this run's directory only
        if path.name == MANIFEST_FILE:
            continue
        report = validate_file(path, out_dir)
        if report.ok and report.schema != "result":
            report.problems.append(SchemaProblem(
                "$.kind", "kind", f"is a {report.schema} document; a run writes only results "
                "and its manifest"))
        elif report.ok and image is not None:
            tag, digest = image
            named = (report.doc.get("provenance") or {}).get("image") or {}
            if named.get("digest") != digest or named.get("tag") != tag:
                report.problems.append(SchemaProblem(
                    "$.provenance.image", "image",
                    f"names {named.get('tag')!r} / {named.get('digest')!r}, but the run used "
                    f"{tag} / {digest}"))
        if report.ok:
            continue
        problems = [str(p) for p in report.problems]
        target = path.with_name(path.name + REJECTED_SUFFIX)
        try:
            os.replace(path, target)
            kept = f"renamed {target.name}"
        except OSError as exc:  # e.g. a directory called <name>.json.rejected is in the way
            kept = f"could not be renamed ({exc.strerror or exc})"
        set_aside[path.name] = (target.name, problems)
        messages.append(f"{path}: {'; '.join(problems[:3])} -> {kept}")
    if set_aside:
        _note_in_manifest(out_dir / MANIFEST_FILE, set_aside)
    return messages


def _note_in_manifest(path: Path, set_aside: dict[str, tuple[str, list[str]]]) -> None:
    """Each rejected result's manifest entry: no file, status error, why, and where the file
    is kept. A manifest that is itself invalid is left as it is (the report says so)."""
    from bench.jsonio import atomic_write_json
    from bench.validate import validate_file

    report = validate_file(path, path.parent)
    if not report.ok or report.schema != "manifest":
        return
    doc = report.doc
    changed = False
    for item in doc["entries"]:
        hit = set_aside.get(item.get("file") or "")
        if hit is None:
            continue
        kept, problems = hit
        item.update(status="error", file=None, sha256=None, rejected=kept,
                    schema_problems=problems,
                    error=f"its result failed validation on the host and was set aside as "
                          f"{kept}: {'; '.join(problems[:3])}")
        changed = True
    if changed:
        atomic_write_json(path, doc)
