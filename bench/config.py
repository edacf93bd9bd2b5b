"""Suites: data, loaded from YAML files and validated by JSON Schema (run rules: bench.rules).

A suite is vendor-independent data (as MLPerf keeps its run rules in one settings file): the
workloads, their named configuration (``small`` / ``full``), precision and the run rules. Any
parameter, run rule or compile choice changed from the command line is an *override*
(``--set ENTRY.PARAM=V``, ``--set [ENTRY.]rules.RULE=V``, ``--set ENTRY.compile=true``):
recorded in the result and flagged as non-comparable, never silent. The thresholds that
decide whether a measurement was disturbed (a suite's ``quiet:`` section, ``--set
quiet.NAME=V``) are not overrides: they change what the result says, not what it measured.

Device settings (threads, CPU affinity) are not overrides: on a CPU they are the size of the
device, so they make another device, which the report tells apart (``DeviceSettings``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.documents import JsonObject, Params, Substitution, ThreadsRequested
from bench.errors import UserError, cut
from bench.ids import entry_id_problem
from bench.paths import SUITES_DIR
from bench.rules import QUIET_NAMES, RULE_NAMES, QuietRules, RunRules, TelemetrySettings
from bench.schema import read_yaml_file, subschema_errors

__all__ = ["RULE_NAMES", "DeviceSettings", "Entry", "RunRules", "Suite", "TelemetrySettings",
           "load_suite"]


def parse_cpus(text: str | int) -> tuple[int, ...]:
    """``"0-3,8"`` -> (0, 1, 2, 3, 8): the Linux cpu-list syntax (as ``taskset -c``)."""
    cpus: set[int] = set()
    for part in str(text).replace(" ", "").split(","):
        first, dash, last = part.partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise UserError(f"CPU list {text!r} is not a list like 0-3,8.",
                            "Give logical CPU numbers and ranges, e.g. --cpus 0-15 or 0,2,4.")
        lo, hi = int(first), int(last) if dash else int(first)
        if hi < lo:
            raise UserError(f"CPU list {text!r} has the range {part} backwards.",
                            f"Write it low-high, e.g. {hi}-{lo}.")
        cpus.update(range(lo, hi + 1))
    return tuple(sorted(cpus))


def format_cpus(cpus: tuple[int, ...] | list[int]) -> str:
    """(0, 1, 2, 3, 8) -> ``"0-3,8"``, the inverse of :func:`parse_cpus`."""
    parts: list[str] = []
    ordered = sorted(set(cpus))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


# The most threads a run may ask for (schemas/suite.schema.json says the same; a test checks):
# more than any host has, fewer than would exhaust one.
MAX_THREADS = 4096


@dataclass(frozen=True)
class DeviceSettings:
    """Host threads and CPU affinity of a run's child processes (None: left as found).

    ``threads`` sets PyTorch's intra-op pool (and OpenMP/MKL's) and, unless
    ``interop_threads`` says otherwise, its inter-op pool; ``cpus`` pins the benchmark's
    processes to those logical CPUs (``os.sched_setaffinity`` in the child, inherited by its
    data-loader workers and ranks). Given ``cpus`` alone, the thread count is their number.
    """

    threads: int | None = None
    interop_threads: int | None = None
    cpus: tuple[int, ...] | None = None

    @classmethod
    def from_dict(cls, data: ThreadsRequested | None) -> DeviceSettings:
        data = data or {}
        cpus = data.get("cpus")
        return cls(threads=data.get("threads"), interop_threads=data.get("interop_threads"),
                   cpus=None if cpus is None else (tuple(cpus) if isinstance(cpus, list | tuple)
                                                   else parse_cpus(cpus)))

    def merged(self, other: DeviceSettings) -> DeviceSettings:
        """``other``'s settings where it has them, this one's elsewhere."""
        return DeviceSettings(
            threads=other.threads if other.threads is not None else self.threads,
            interop_threads=(other.interop_threads if other.interop_threads is not None
                             else self.interop_threads),
            cpus=other.cpus if other.cpus is not None else self.cpus)

    def effective(self) -> DeviceSettings:
        """What the child applies: threads from the CPU list, inter-op from threads."""
        threads = self.threads if self.threads is not None else (
            len(self.cpus) if self.cpus else None)
        interop = self.interop_threads if self.interop_threads is not None else threads
        return DeviceSettings(threads, interop, self.cpus)

    @property
    def empty(self) -> bool:
        return self.threads is None and self.interop_threads is None and self.cpus is None

    def as_dict(self) -> ThreadsRequested:
        return {"threads": self.threads, "interop_threads": self.interop_threads,
                "cpus": None if self.cpus is None else list(self.cpus)}

    def cli_args(self) -> list[str]:
        """The ``python -m bench run`` flags that ask for these settings (every launcher
        passes them on the same way)."""
        args = []
        if self.threads is not None:
            args += ["--threads", str(self.threads)]
        if self.interop_threads is not None:
            args += ["--interop-threads", str(self.interop_threads)]
        if self.cpus is not None:
            args += ["--cpus", format_cpus(self.cpus)]
        return args

    @classmethod
    def from_cli(cls, threads: int | str | None = None, interop_threads: int | str | None = None,
                 cpus: str | None = None) -> DeviceSettings:
        """Settings from command-line strings (``invoke bench --threads 4 --cpus 0-3``)."""
        def count(flag: str, value: int | str | None) -> int | None:
            if value is None or value == "":
                return None
            if (isinstance(value, int) or str(value).isdigit()) and \
                    1 <= int(value) <= MAX_THREADS:
                return int(value)
            raise UserError(f"--{flag} {value!r} is not a thread count.",
                            f"Give a whole number from 1 to {MAX_THREADS}, e.g. --{flag} 4.")

        return cls(threads=count("threads", threads),
                   interop_threads=count("interop-threads", interop_threads),
                   cpus=parse_cpus(cpus) if cpus else None)


@dataclass(frozen=True)
class Entry:
    """One workload run of a suite: ``id`` names its result file."""

    id: str
    workload: str
    mode: str
    config: str
    precision: str
    params: Params
    rules: RunRules
    overrides: Params = field(default_factory=dict)
    substitution: Substitution | None = None  # see substitution_for()
    # A cluster run places this single-device entry on every node (a per-node sweep).
    per_node: bool = False
    compile: bool = False  # torch.compile the workload's model (default backend)
    device: DeviceSettings = field(default_factory=DeviceSettings)
    # An MLPerf scenario entry (bench.scenarios): its name and its resolved rules.
    scenario: str | None = None
    scenario_rules: JsonObject | None = None

    def to_dict(self) -> JsonObject:
        return {
            "id": self.id,
            "workload": self.workload,
            "mode": self.mode,
            "config": self.config,
            "precision": self.precision,
            "params": self.params,
            "rules": self.rules.to_dict(),
            "overrides": self.overrides,
            "substitution": self.substitution,
            "per_node": self.per_node,
            "compile": self.compile,
            "device": self.device.as_dict(),
            "scenario": self.scenario,
            "scenario_rules": self.scenario_rules,
        }

    @classmethod
    def from_dict(cls, data: JsonObject) -> Entry:
        return cls(id=data["id"], workload=data["workload"], mode=data["mode"],
                   config=data["config"], precision=data["precision"],
                   params=dict(data["params"]), rules=RunRules.from_dict(data["rules"]),
                   overrides=dict(data.get("overrides") or {}),
                   substitution=data.get("substitution"),
                   per_node=bool(data.get("per_node", False)),
                   compile=bool(data.get("compile", False)),
                   device=DeviceSettings.from_dict(data.get("device")),
                   scenario=data.get("scenario"), scenario_rules=data.get("scenario_rules"))


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    path: Path
    seed: int
    telemetry: TelemetrySettings
    entries: tuple[Entry, ...]
    options: JsonObject = field(default_factory=dict)
    quiet: QuietRules = field(default_factory=QuietRules)


def available_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def suite_path(name_or_path: str) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml", ".json") or candidate.exists():
        if not candidate.exists():
            raise UserError(f"Suite file {candidate} does not exist.",
                            "Give the path of a suite file, or a suite name: "
                            f"{', '.join(available_suites())}.")
        return candidate
    path = SUITES_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise UserError(f"Unknown suite {name_or_path!r}.",
                        f"Choose one of: {', '.join(available_suites())} "
                        "(or give the path of a suite file).")
    return path


ALL_ENTRIES = "*"
RULES_PREFIX = "rules."
QUIET_PREFIX = "quiet."
COMPILE_KEY = "compile"
OVERRIDE_FORMS = ("`--set resnet-train.batch_size=64` (a parameter), "
                  "`--set rules.min_duration_s=30` (a run rule of every entry), "
                  "`--set resnet-train.rules.repeats=5` (one entry's) or "
                  "`--set resnet-train.compile=true`")


def parse_override(text: str) -> tuple[str, str, Any]:
    """One ``--set``: (entry id or ``ALL_ENTRIES``, key, value).

    ``resnet-train.batch_size=64`` -> ('resnet-train', 'batch_size', 64);
    ``rules.min_duration_s=30`` -> ('*', 'rules.min_duration_s', 30.0... as YAML reads it);
    ``resnet-train.rules.repeats=5`` -> ('resnet-train', 'rules.repeats', 5). The key is the
    name the result records in ``workload.overrides``. The value is YAML (``--set
    x.sizes=[1,2]``); one that is not, or that holds a number that is not finite (``.inf``,
    ``.nan``), is refused.
    """
    from bench.jsonio import MAX_DEPTH, UnreadableDocument, check_tree

    target, sep, raw = text.partition("=")
    if sep and target.startswith(RULES_PREFIX) and target.count(".") == 1:
        entry_id, key = ALL_ENTRIES, target
    elif sep and RULES_PREFIX in target and target.rpartition(".")[0].endswith(".rules"):
        head, _, rule = target.rpartition(".")
        entry_id, key = head[: -len(".rules")], RULES_PREFIX + rule
    else:
        entry_id, _, key = target.rpartition(".")
    if not sep or not entry_id or not key or key == RULES_PREFIX:
        raise UserError(f"Override {cut(repr(text), 120)} is not of a known form.",
                        f"Write e.g. {OVERRIDE_FORMS}.")
    if key.startswith(RULES_PREFIX) and key[len(RULES_PREFIX):] not in RULE_NAMES:
        raise UserError(f"Override {cut(repr(text), 120)} names no run rule "
                        f"{cut(repr(key[len(RULES_PREFIX):]), 60)}.",
                        f"Run rules are: {', '.join(RULE_NAMES)}.")
    try:
        value = yaml.safe_load(raw)
        check_tree(value)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, UnreadableDocument):
            reason = f"the value {exc}"
        elif isinstance(exc, RecursionError):
            reason = f"the value nests deeper than {MAX_DEPTH} levels"
        raise UserError(f"Override {cut(repr(text), 120)}: the value is not usable "
                        f"({cut(reason, 160)}).",
                        "Quote strings and write numbers plainly, e.g. rules.repeats=5 or "
                        "resnet-train.batch_size=64.") from exc
    return entry_id, key, value


def quiet_with(quiet: QuietRules, texts: list[str]) -> QuietRules:
    """The suite's quiet thresholds with ``--set quiet.NAME=VALUE`` applied, checked as the
    suite schema checks its ``quiet:`` section."""
    changes: JsonObject = {}
    for text in texts:
        target, _, raw = text.partition("=")
        name = target[len(QUIET_PREFIX):]
        if name not in QUIET_NAMES:
            raise UserError(f"Override {cut(repr(text), 120)} names no quiet threshold "
                            f"{cut(repr(name), 60)}.",
                            f"Quiet thresholds are: {', '.join(QUIET_NAMES)}.")
        from bench.jsonio import check_tree

        try:
            changes[name] = yaml.safe_load(raw)
            check_tree(changes[name])
        except (yaml.YAMLError, ValueError, RecursionError) as exc:
            raise UserError(f"Override {cut(repr(text), 120)}: the value is not usable.",
                            "Write numbers plainly, e.g. quiet.max_cv=0.2.") from exc
    if not changes:
        return quiet
    problems = subschema_errors({**quiet.to_dict(), **changes}, "suite", "quiet")
    if problems:
        first = problems[0]
        name = first.path.removeprefix("$.").split("[")[0]
        raise UserError(f"--set quiet.{name}={cut(repr(changes.get(name)), 80)}: "
                        f"{first.message}.",
                        "Give a value the suite schema accepts (schemas/suite.schema.json, "
                        "$defs.quiet).")
    return quiet.merged(changes)


def split_overrides(overrides: Params) -> tuple[Params, JsonObject,
                                                        bool | None]:
    """An entry's overrides as (parameters, run rules without the prefix, compile or None)."""
    params = {k: v for k, v in overrides.items()
              if not k.startswith(RULES_PREFIX) and k != COMPILE_KEY}
    rules = {k[len(RULES_PREFIX):]: v for k, v in overrides.items() if k.startswith(RULES_PREFIX)}
    return params, rules, overrides.get(COMPILE_KEY)


def rules_with(rules: RunRules, changes: JsonObject, entry_id: str) -> RunRules:
    """``rules`` with ``changes`` from the command line, checked as the suite schema checks
    a suite's rules (a UserError names the rule, the value and what it accepts)."""
    if not changes:
        return rules
    problems = subschema_errors({**rules.to_dict(), **changes}, "suite", "rules")
    if problems:
        first = problems[0]
        rule = first.path.removeprefix("$.")
        raise UserError(f"--set rules.{rule}={cut(repr(changes.get(rule)), 80)} "
                        f"(entry {entry_id!r}): {first.message}.",
                        "Give a value the suite schema accepts (schemas/suite.schema.json, "
                        "$defs.rules).")
    return rules.merged(changes)


def substitution_for(options: JsonObject, workload: str,
                     vendor: str | None) -> Substitution | None:
    """The suite's declared replacement of ``workload`` on ``vendor``, if any.

    ``options.substitutions`` lets a suite say, as data, that a device class runs another
    model in a workload's place: the published evaluation ran BERT-tiny instead of BERT-base
    on the Jetson. The entry keeps its id (so the report lines it up with the other devices)
    and the result records the substitution and marks itself non-comparable.
    """
    if vendor is None:
        return None
    for sub in options.get("substitutions", []):
        if sub["workload"] == workload and vendor in sub["vendors"]:
            return {"requested": workload, "used": sub["use"], "vendor": vendor,
                    "reason": sub.get("reason", "declared in the suite's options")}
    return None


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a mapping"}.get(type(value), type(value).__name__)


def param_type_problem(configs: dict[str, Params], params: Params) -> str | None:
    """Why a parameter's value has the wrong type for its workload, judged by the types its
    configurations use (None there: any type); an integer is accepted where a number is.
    A batch size must be at least 1: a batch of nothing would be measured as 0 items/s."""
    for name, value in params.items():
        if name.endswith("batch_size") and isinstance(value, int) and value < 1:
            return f"parameter {name}={value!r} must be at least 1"
        examples = [c[name] for c in configs.values() if name in c]
        if value is None or any(e is None for e in examples):
            continue
        allowed = {type(e) for e in examples}
        kind = type(value)
        if kind in allowed or (kind is int and float in allowed):
            continue
        wanted = " or ".join(sorted({_type_name(e) for e in examples}))
        return f"parameter {name}={value!r} is {_type_name(value)}, expected {wanted}"
    return None


def _read_suite(path: Path) -> JsonObject:
    return read_yaml_file(path, "suite", "Suite file")


def _check_substitutions(options: JsonObject, path: Path) -> None:
    from bench.workload import get_workload

    for j, sub in enumerate(options.get("substitutions", [])):
        for key in ("workload", "use"):
            try:
                get_workload(sub[key])
            except UserError as exc:
                raise UserError(f"Suite file {path} at $.options.substitutions[{j}].{key}: "
                                f"{exc.what}", exc.fix) from exc


def _entries(doc: JsonObject, path: Path, vendor: str | None,
             overrides: dict[str, Params], seen: set[str],
             stack: tuple[Path, ...], intervals: list[float],
             device: DeviceSettings | None = None) -> list[Entry]:
    """The suite's entries: those of its ``include``d suites (each under its own rules,
    options and device settings), then its own. Consumes the overrides that name an entry
    (``ALL_ENTRIES``' apply to every entry and stay); collects the telemetry intervals the
    included suites ask for. ``device``: the command line's device settings, which win."""
    from bench.workload import get_workload  # workloads import torch: only when needed

    entries: list[Entry] = []
    for k, name in enumerate(doc.get("include", [])):
        try:
            included = suite_path(name)
        except UserError as exc:
            raise UserError(f"Suite file {path} at $.include[{k}]: {exc.what}", exc.fix) from exc
        if included.resolve() in stack:
            raise UserError(f"Suite file {path} at $.include[{k}]: including {name!r} makes a "
                            "cycle.", "Remove the include that leads back to this suite.")
        included_doc = _read_suite(included)
        if "interval_s" in included_doc.get("telemetry", {}):
            intervals.append(included_doc["telemetry"]["interval_s"])
        entries += _entries(included_doc, included, vendor, overrides, seen,
                            (*stack, included.resolve()), intervals, device)

    rules = RunRules().merged(doc.get("rules"))
    suite_device = DeviceSettings.from_dict(doc.get("device"))
    options = doc.get("options", {})
    _check_substitutions(options, path)
    for i, raw in expand_sweeps(doc.get("entries", [])):
        where = f"{path} at $.entries[{i}]"
        substitution = substitution_for(options, raw["workload"], vendor)
        try:
            workload = get_workload(substitution["used"] if substitution else raw["workload"])
        except UserError as exc:
            raise UserError(f"Suite file {path} at $.entries[{i}].workload: {exc.what}",
                            exc.fix) from exc
        mode = raw["mode"]
        if mode not in workload.modes:
            raise UserError(f"{where}: workload {workload.name!r} has no mode {mode!r}.",
                            f"Use one of: {', '.join(workload.modes)}.")
        config = raw.get("config", "small")
        if config not in workload.configs:
            raise UserError(f"{where}: workload {workload.name!r} has no config {config!r}.",
                            f"Use one of: {', '.join(workload.configs)}.")
        scenario = raw.get("scenario")
        entry_id = raw.get("id", f"{raw['workload']}-{mode}"
                           + (f"-{scenario.replace('_', '-')}" if scenario else ""))
        problem = entry_id_problem(entry_id)
        if problem:
            raise UserError(f"{where}: entry id {problem}.",
                            "Give the entry an `id` of letters, digits and ._- (it names the "
                            "result file <id>.json).")
        if entry_id in seen:
            raise UserError(f"{where}: entry id {entry_id!r} appears twice.",
                            "Give each entry a unique `id`.")
        seen.add(entry_id)
        params = dict(workload.configs[config])
        params.update(raw.get("params", {}))
        entry_overrides = {**overrides.get(ALL_ENTRIES, {}), **overrides.pop(entry_id, {})}
        param_changes, rule_changes, compile_override = split_overrides(entry_overrides)
        params.update(param_changes)
        entry_rules = rules_with(rules.merged(raw.get("rules")), rule_changes, entry_id)
        if compile_override is not None and not isinstance(compile_override, bool):
            raise UserError(f"--set {entry_id}.compile={compile_override!r}: compile is true "
                            "or false.", f"Write `--set {entry_id}.compile=true`.")
        compiled = bool(raw.get("compile", False)) if compile_override is None \
            else compile_override
        unknown = sorted(set(params) - set(workload.configs[config]))
        if unknown:
            raise UserError(
                f"{where}: workload {workload.name!r} has no parameter(s) {', '.join(unknown)}.",
                f"Known parameters: {', '.join(sorted(workload.configs[config]))}.")
        problem = param_type_problem(workload.configs, params)
        if problem:
            raise UserError(f"{where} (entry {entry_id!r}): {problem}.",
                            "Give a value of the right type and range (in the suite file or "
                            "`--set`).")
        try:
            workload.validate_params(params)
            workload.validate_rules(entry_rules)
        except UserError as exc:
            raise UserError(f"{where} (entry {entry_id!r}): {exc.what}", exc.fix) from exc
        check_streams(params, mode, where)
        scenario_rules = None
        if scenario:
            scenario_rules = scenario_rules_for(workload, mode, scenario, doc, raw, where)
        if substitution:
            # A vendor-specific change of the workload: recorded like an override, so the
            # result is flagged non-comparable wherever overrides are.
            entry_overrides = {"workload": workload.name, **entry_overrides}
        settings = suite_device.merged(DeviceSettings.from_dict(raw.get("device")))
        entries.append(Entry(
            id=entry_id, workload=workload.name, mode=mode, config=config,
            precision=raw.get("precision", workload.default_precision),
            params=params, rules=entry_rules, overrides=entry_overrides,
            substitution=substitution, per_node=bool(raw.get("per_node", False)),
            compile=compiled, device=settings.merged(device or DeviceSettings()),
            scenario=scenario, scenario_rules=scenario_rules))
    return entries


def expand_sweeps(raw_entries: list[JsonObject]) -> list[tuple[int, JsonObject]]:
    """Entries with their index in the file; an entry with ``sweep: {streams: [1, 2, 4]}``
    becomes one entry per value (id ``<id>-streams-<N>``, the value in its params), so each
    point is a result of its own that the report lines up into a sweep."""
    out: list[tuple[int, JsonObject]] = []
    for i, raw in enumerate(raw_entries):
        sweep = raw.get("sweep")
        if not sweep:
            out.append((i, raw))
            continue
        base_id = raw.get("id", f"{raw['workload']}-{raw['mode']}")
        for n in sweep["streams"]:
            entry = {k: v for k, v in raw.items() if k != "sweep"}
            entry["id"] = f"{base_id}-streams-{n}"
            entry["params"] = {**raw.get("params", {}), "streams": n}
            out.append((i, entry))
    return out


def check_streams(params: Params, mode: str, where: str) -> None:
    """``streams`` N > 1 runs N host threads of inference on synthetic on-device batches."""
    streams = params.get("streams", 1)
    if streams is None or streams == 1:
        return
    if not isinstance(streams, int) or isinstance(streams, bool) or streams < 1:
        raise UserError(f"{where}: streams={streams!r} is not a positive integer.",
                        "Give the number of concurrent streams, e.g. streams: 4.")
    if mode != "infer":
        raise UserError(f"{where}: streams={streams} applies to inference only.",
                        "Remove streams from the training entry.")
    if params.get("data") == "loader":
        raise UserError(f"{where}: streams={streams} with data: loader would share one "
                        "DataLoader between threads.",
                        "Use data: synthetic (each stream gets its own batch on the device).")


def scenario_rules_for(workload: Any, mode: str, scenario: str, doc: JsonObject,
                       raw: JsonObject, where: str) -> JsonObject:
    """The resolved rules of a scenario entry: MLPerf's, then the suite's, then the entry's."""
    from bench.scenarios.rules import resolve

    if mode != "infer":
        raise UserError(f"{where}: scenario {scenario!r} needs mode infer, not {mode!r}.",
                        "MLPerf scenarios measure inference: set mode: infer.")
    if workload.group == "micro":
        raise UserError(f"{where}: {workload.name!r} is an operator micro-benchmark; a "
                        "scenario serves a model.", "Use a model workload (resnet, bert, ...).")
    suite_rules = doc.get("scenario_rules", {})
    return resolve(workload.name, scenario, suite_rules.get("common"),
                   suite_rules.get(scenario), raw.get("scenario_rules"),
                   where=where).as_dict()


def suite_outline(name_or_path: str, _stack: tuple[Path, ...] = ()) -> tuple[str, int]:
    """A suite's description and entry count (sweeps expanded, included suites counted),
    read and schema-checked without resolving the entries, so without importing a workload
    (``python -m bench list``); ``load_suite`` checks the rest."""
    path = suite_path(name_or_path)
    doc = _read_suite(path)
    stack = (*_stack, path.resolve())
    count = len(expand_sweeps(doc.get("entries", [])))
    for k, name in enumerate(doc.get("include", [])):
        included = suite_path(name)
        if included.resolve() in stack:
            raise UserError(f"Suite file {path} at $.include[{k}]: including {name!r} makes a "
                            "cycle.", "Remove the include that leads back to this suite.")
        count += suite_outline(str(included), stack)[1]
    return doc.get("description", ""), count


def load_suite(name_or_path: str, overrides: list[str] | None = None,
               only: list[str] | None = None, vendor: str | None = None,
               device: DeviceSettings | None = None) -> Suite:
    """Load, schema-check and resolve a suite; every problem is a ``UserError``.

    With ``vendor`` the suite's substitutions for that vendor are applied. A suite may
    ``include`` other suites: their entries come first, each under its own suite's rules; the
    run samples telemetry at the finest interval any of them asks for. ``device``: threads
    and CPUs from the command line, over the suite's and its entries' ``device`` settings.
    """
    path = suite_path(name_or_path)
    doc = _read_suite(path)
    telemetry = TelemetrySettings(**doc.get("telemetry", {}))
    quiet_texts = [t for t in overrides or [] if t.partition("=")[0].startswith(QUIET_PREFIX)
                   and t.partition("=")[0].count(".") == 1]
    quiet = quiet_with(QuietRules().merged(doc.get("quiet")), quiet_texts)
    parsed_overrides: dict[str, Params] = {}
    for text in overrides or []:
        if text in quiet_texts:
            continue
        entry_id, param, value = parse_override(text)
        parsed_overrides.setdefault(entry_id, {})[param] = value

    intervals: list[float] = []
    entries = _entries(doc, path, vendor, parsed_overrides, set(), (path.resolve(),),
                       intervals, device)
    parsed_overrides.pop(ALL_ENTRIES, None)
    # One sampler serves the whole run: sample as finely as the finest included suite asks.
    telemetry = dataclasses.replace(
        telemetry, interval_s=min([telemetry.interval_s, *intervals]))
    if not entries:
        raise UserError(f"Suite file {path} has no entries (none of its own, none included).",
                        "Add `entries` or `include` other suites.")
    if parsed_overrides:
        raise UserError(
            f"Override(s) for {', '.join(sorted(parsed_overrides))} match no entry of suite "
            f"{doc['name']!r}.", f"Entries are: {', '.join(e.id for e in entries)}.")
    if only:
        missing = sorted(set(only) - {e.id for e in entries})
        if missing:
            raise UserError(f"Suite {doc['name']!r} has no entry {', '.join(missing)}.",
                            f"Entries are: {', '.join(e.id for e in entries)}.")
        entries = [e for e in entries if e.id in only]
    return Suite(name=doc["name"], description=doc.get("description", ""), path=path,
                 seed=doc.get("seed", 0), telemetry=telemetry, entries=tuple(entries),
                 options=doc.get("options", {}), quiet=quiet)
