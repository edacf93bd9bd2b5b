"""The JSON documents of the test-bed, typed: what each one holds, in one place.

A result document, a run's manifest, an audit's verdict, a published document and a device
spec sheet are JSON (the sealed bytes are the record), and ``schemas/*.schema.json`` is their
contract. The records here are ``TypedDict``s that say the same thing to a reader and a type
checker: a required key of the schema is a key of the ``_Name`` base class, an optional one a
key of the ``total=False`` subclass (``__required_keys__`` and ``__optional_keys__`` mirror
``required`` and ``properties``; ``tests/test_documents.py`` fails when a schema and its record
differ). A ``TypedDict`` is a plain ``dict`` at run time: nothing is converted, every ``.get``
read and every sealed byte stays as it was. Why not dataclasses or msgspec Structs:
docs/architecture.md, "Document types".

The module imports nothing of the test-bed (the lowest layer; ``bench`` and ``testbed`` both
read it) and runs on the oldest Python of the vendor images (3.8, jetson): annotations are
never evaluated (``from __future__ import annotations``), the keys that are Python keywords
(``import``, ``class``, ``pass``) use the functional form with string types, and the few
aliases evaluated at import use ``typing.Dict`` / ``typing.List``.

Three open maps have a name, each for a shape nobody fixes; every other value is a record:
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, TypedDict, Union  # noqa: UP035 (Python 3.8: see above)

# A JSON object whose keys the producer chooses (LoadGen's summary, a vendor tool's own
# record, a suite's raw YAML before it is checked).
JsonObject = Dict[str, Any]  # noqa: UP006
# A workload's parameters (a config's, a grid point's, a suite's overrides): each workload
# names its own in its ``configs``; the suite loader checks their types.
Params = Dict[str, Any]  # noqa: UP006
# Facts a workload, a backend or a tool adds to its record (``info()``, ``extra``, memory
# statistics, an adapter's description): open by design, shown as given.
Info = Dict[str, Any]  # noqa: UP006


# result.schema.json /
class _ResultDoc(TypedDict):
    schema_version: str
    kind: str
    run_id: str
    suite: SuiteRef
    workload: WorkloadSection
    rules: RulesRecord
    status: str
    error: ErrorRecord | None
    metrics: dict[str, Metric]
    repeats: list[RepeatDoc]
    telemetry: TelemetrySection
    provenance: Provenance
    started_at: str
    ended_at: str
    sha256: str


class ResultDoc(_ResultDoc, total=False):
    disturbed: Disturbed
    points: list[PointDoc]
    function: FunctionCases | FunctionChecks | ModelCheck
    scenario: ScenarioRecord
    placement: PlacementRecord


# result.schema.json /suite
class _SuiteRef(TypedDict):
    name: str
    seed: int


class SuiteRef(_SuiteRef, total=False):
    path: str


# result.schema.json /workload
class _WorkloadSection(TypedDict):
    id: str
    name: str
    mode: str
    group: str
    config: str
    params: Params
    item_unit: str
    precision_requested: str
    precision_used: str
    precision_reason: str | None
    overrides: Params


class WorkloadSection(_WorkloadSection, total=False):
    compile: CompileRecord
    info: WorkloadInfo


# result.schema.json /workload/compile
class _CompileRecord(TypedDict):
    requested: bool
    used: bool


class CompileRecord(_CompileRecord, total=False):
    mode: str
    backend: str
    modules: list[str]
    graphs: int
    reason: str


# result.schema.json /workload/info
class WorkloadInfo(TypedDict, total=False):
    cpu_fallback: list[str]
    substitution: Substitution
    input_variants: InputVariants


# result.schema.json /workload/info/substitution
class _Substitution(TypedDict):
    requested: str
    used: str
    vendor: str


class Substitution(_Substitution, total=False):
    reason: str


# result.schema.json /workload/info/input_variants
class _InputVariants(TypedDict):
    requested: int
    used: int


class InputVariants(_InputVariants, total=False):
    attrs: list[str]
    reason: str


# result.schema.json /rules
class _RulesRecord(TypedDict):
    warmup_iters: int
    min_iters: int
    min_duration_s: float
    repeats: int
    timeout_s: float


class RulesRecord(_RulesRecord, total=False):
    host_bound_util_pct: float
    input_variants: int
    soak_s: float


# result.schema.json /disturbed
class _Disturbed(TypedDict):
    value: bool | None


class Disturbed(_Disturbed, total=False):
    reasons: list[DisturbedReason]
    thresholds: QuietThresholds
    require_quiet: bool
    unjudged: list[str]


# result.schema.json /disturbed/reasons[]
class DisturbedReason(TypedDict):
    code: str
    figure: float | None
    threshold: float | None
    unit: str | None
    message: str


# result.schema.json /points[]
class _PointDoc(TypedDict):
    params: Params
    status: str
    metrics: dict[str, Metric]


class PointDoc(_PointDoc, total=False):
    error: ErrorRecord | None
    windows: list[PointWindow]


# result.schema.json /points[]/windows[]
class PointWindow(TypedDict):
    start_s: float
    end_s: float


# result.schema.json /function/oneOf/1
class FunctionChecks(TypedDict):
    kind: str
    checks: list[ModelCheck]


# result.schema.json /function/oneOf/2
class FunctionCases(TypedDict):
    kind: str
    catalogue: JsonObject  # the operator catalogue's sha256 and operators (bench.function)
    tolerances: dict[str, float]
    support: dict[str, SupportRate]
    matrix: dict[str, dict[str, str]]
    cases: list[CaseRow]


# result.schema.json /function/oneOf/2/support/*
class SupportRate(TypedDict):
    operators: int
    rate_pct: float | None


# result.schema.json /function/oneOf/2/cases[]
_CaseRow = TypedDict("_CaseRow", {"op": "str", "variant": "str", "call": "int", "pass": "str",
                                  "class": "str"})


class CaseRow(_CaseRow, total=False):
    max_abs_err: float | None
    max_rel_err: float | None
    err_over_tol: float | None
    message: str


# result.schema.json /scenario
class _ScenarioRecord(TypedDict):
    name: str
    rules: JsonObject  # the scenario's rules as MLPerf names them (bench.scenarios.rules)
    scaled: list[JsonObject]
    headline_metric: str
    verdict: str


class ScenarioRecord(_ScenarioRecord, total=False):
    mlperf_model: str | None
    loadgen: JsonObject  # LoadGen's own summary, as LoadGen prints it
    repeats_valid: list[bool]


# result.schema.json /repeats[]
class _RepeatDoc(TypedDict):
    index: int
    status: str


class RepeatDoc(_RepeatDoc, total=False):
    error: ErrorRecord | None
    iterations: int
    items: float
    throughput_items_per_s: float
    latencies_s: list[float]
    setup_s: float
    cold_start: ColdStart
    headline: Params
    window: RepeatWindow
    memory: Info
    telemetry: RepeatTelemetry
    series: dict[str, list[float | None]]
    metrics: dict[str, Metric]
    contention: Contention


# result.schema.json /repeats[]/cold_start
class ColdStart(TypedDict, total=False):
    load_s: float | None
    first_iter_s: float | None


# result.schema.json /repeats[]/window
class RepeatWindow(TypedDict):
    start_mono: float
    end_mono: float
    start_wall: float
    end_wall: float
    start_s: float
    end_s: float
    duration_s: float


# result.schema.json /repeats[]/telemetry
class _RepeatTelemetry(TypedDict):
    samples: int
    errors: int
    interval: IntervalStats


class RepeatTelemetry(_RepeatTelemetry, total=False):
    coverage: dict[str, Coverage]
    energy_integrated_j: float | None
    energy_counter_j: float | None


# result.schema.json /repeats[]/telemetry/coverage/*
class Coverage(TypedDict, total=False):
    valid_samples: int
    max_gap_s: float | None
    bracketed: bool


# result.schema.json /telemetry
class _TelemetrySection(TypedDict):
    backend: str
    interval: IntervalStats
    fields: dict[str, str]
    unavailable: dict[str, str]
    errors: TelemetryErrors
    idle: IdleRecord | None
    t_s: list[float]
    t_wall: list[float]
    devices: list[DeviceSeries]


class TelemetrySection(_TelemetrySection, total=False):
    description: Info
    note: str | None
    selection: TelemetrySelection
    measures: str
    not_the_device: str | None
    scope: dict[str, str]
    overhead: SamplerOverhead
    errors_t_s: list[float]
    origin_mono_s: float
    nodes: list[NodeTelemetry]


# result.schema.json /telemetry/selection
class _TelemetrySelection(TypedDict):
    requested: str
    used: str
    attempts: list[TelemetryAttempt]


class TelemetrySelection(_TelemetrySelection, total=False):
    chain: list[str]


# result.schema.json /telemetry/selection/attempts[]
class _TelemetryAttempt(TypedDict):
    backend: str
    status: str


class TelemetryAttempt(_TelemetryAttempt, total=False):
    reason: str


# result.schema.json /telemetry/overhead
class SamplerOverhead(TypedDict, total=False):
    thread_cpu_s: float
    thread_wall_s: float
    cpu_fraction: float | None


# result.schema.json /telemetry/interval
class _IntervalStats(TypedDict):
    requested_s: float
    mean_s: float | None
    p99_jitter_s: float | None
    samples: int


class IntervalStats(_IntervalStats, total=False):
    max_gap_s: float | None
    read_mean_s: float | None
    read_max_s: float | None


# result.schema.json /telemetry/errors
class _TelemetryErrors(TypedDict):
    count: int
    messages: dict[str, int]


class TelemetryErrors(_TelemetryErrors, total=False):
    in_window: int
    field_misses: dict[str, int]


# result.schema.json /telemetry/devices[]
class DeviceSeries(TypedDict):
    index: int
    series: Series


# result.schema.json /telemetry/devices[]/series
class Series(TypedDict, total=False):
    util_pct: list[float | None]
    power_w: list[float | None]
    mem_used_bytes: list[float | None]
    mem_total_bytes: list[float | None]
    clock_hz: list[float | None]
    energy_j: list[float | None]
    temp_c: list[float | None]
    throttle: list[str | None]


# result.schema.json /telemetry/nodes[]
class _NodeTelemetry(TypedDict):
    node: str
    t_s: list[float]
    devices: list[DeviceSeries]


class NodeTelemetry(_NodeTelemetry, total=False):
    origin_mono_s: float
    t_wall: list[float]


# result.schema.json /placement
class _PlacementRecord(TypedDict):
    launcher: str
    world_size: int
    nodes: list[NodeRanks]


class PlacementRecord(_PlacementRecord, total=False):
    job_id: str | None
    nnodes: int
    node: str
    node_rank: int
    devices: list[int]
    per_node: bool
    telemetry_devices: int


# result.schema.json /placement/nodes[]
class _NodeRanks(TypedDict):
    node: str
    ranks: list[int]


class NodeRanks(_NodeRanks, total=False):
    node_rank: int


# result.schema.json /provenance
class _Provenance(TypedDict):
    bench_version: str
    git: GitState
    source_sha256: str
    image: ImageInfo
    vendor: str
    device: DeviceInfo
    torch: TorchInfo
    host: HostInfo
    seeds: Seeds


class Provenance(_Provenance, total=False):
    label: str
    device_settings: DeviceSettingsRecord
    command: list[str]


# result.schema.json /provenance/git
class GitState(TypedDict):
    commit: str | None


# result.schema.json /provenance/image
class ImageInfo(TypedDict):
    tag: str | None
    digest: str | None
    native: bool


# result.schema.json /provenance/device
class DeviceInfo(TypedDict, total=False):
    name: str
    count: int
    driver_version: str | None
    sdk_version: str | None
    memory_total_bytes: int | None


# result.schema.json /provenance/torch
class TorchInfo(TypedDict):
    version: str


# result.schema.json /provenance/host
class HostInfo(TypedDict):
    cpu_model: str
    logical_cores: int | None
    memory_bytes: int
    os: str
    kernel: str


# result.schema.json /provenance/device_settings
class DeviceSettingsRecord(TypedDict, total=False):
    requested: ThreadsRequested
    applied: ThreadsApplied


# result.schema.json /provenance/device_settings/requested
class ThreadsRequested(TypedDict, total=False):
    threads: int | None
    interop_threads: int | None
    cpus: list[int] | None


# result.schema.json /provenance/device_settings/applied
class ThreadsApplied(TypedDict, total=False):
    threads: int
    interop_threads: int
    cpus: str | None
    cpu_count: int | None


# result.schema.json /provenance/seeds
class Seeds(TypedDict):
    suite_seed: int


# result.schema.json /$defs/contention
class Contention(TypedDict, total=False):
    window_s: float
    cpus: int | None
    threads: int
    slowdown: float | None
    cpu_wait_fraction: float | None
    bench_cpus: float | None
    other_cpus: float | None
    steal_cpus: float | None
    load_avg_1m_max: float | None
    cpu_pressure_avg10_max: float | None
    monitor_cpu_s: float
    throttle: ThrottleRecord
    device_processes: DeviceProcesses
    reason: str
    method: str


# result.schema.json /$defs/contention/throttle
class ThrottleRecord(TypedDict, total=False):
    readings: int
    reasons: dict[str, float]
    disturbing_share: float | None
    reason: str | None


# result.schema.json /$defs/contention/device_processes
class DeviceProcesses(TypedDict, total=False):
    other: int | None
    other_memory_bytes: float | None
    processes: list[Info]
    reason: str | None


# result.schema.json /$defs/modelCheck
class _ModelCheck(TypedDict):
    kind: str
    workload: str
    mode: str
    precision: str
    status: str
    tolerance: ModelTolerance


class ModelCheck(_ModelCheck, total=False):
    reason: str
    reference: ModelReference
    outputs: dict[str, OutputAgreement]
    tokens: TokenAgreement
    loss: Info
    gradients: GradientAgreement
    seconds: float


# result.schema.json /$defs/modelCheck/tolerance
class ModelTolerance(TypedDict):
    norm_rel: float


# result.schema.json /$defs/modelCheck/reference
class ModelReference(TypedDict, total=False):
    device: str
    dtype: str


# result.schema.json /$defs/modelCheck/outputs/*
class _OutputAgreement(TypedDict):
    norm_rel_err: float | None


class OutputAgreement(_OutputAgreement, total=False):
    max_abs_err: float | None
    agreement_pct: float
    decisive: int
    decisive_disagreements: int


# result.schema.json /$defs/modelCheck/tokens
class _TokenAgreement(TypedDict):
    requested: int
    agreeing: int


class TokenAgreement(_TokenAgreement, total=False):
    diverged_at: int | None
    near_tie: bool


# result.schema.json /$defs/modelCheck/gradients
class GradientAgreement(TypedDict):
    norm_rel_err: float | None


# result.schema.json /$defs/error
class _ErrorRecord(TypedDict):
    type: str
    message: str


class ErrorRecord(_ErrorRecord, total=False):
    signal: str
    traceback: list[str]


# result.schema.json /$defs/metric
class _Metric(TypedDict):
    value: float | bool | None
    unit: str


class Metric(_Metric, total=False):
    reason: str
    n: int
    std: float | None
    cv: float | None
    per_repeat: list[float | None]


# manifest.schema.json /
class _ManifestDoc(TypedDict):
    schema_version: str
    kind: str
    run_id: str
    suite: ManifestSuite
    vendor: str
    state: str
    started_at: str
    ended_at: str | None
    entries: list[ManifestEntry]


class ManifestDoc(_ManifestDoc, total=False):
    error: str
    bench_version: str
    telemetry_note: str | None
    idle: IdleRecord | None
    preflight: Preflight
    image: ImageInfo
    placement: PlacementRecord
    slurm: JsonObject  # the job id, batch script, scheduler record (testbed.launch.slurm)
    signature: Signature


# manifest.schema.json /suite
class ManifestSuite(TypedDict):
    name: str


# manifest.schema.json /preflight
class Preflight(TypedDict, total=False):
    busy: bool | None
    cpus: int | None
    other_cpus: float | None
    steal_cpus: float | None
    load_avg_1m_max: float | None
    cpu_pressure_avg10_max: float | None
    window_s: float


# manifest.schema.json /signature
class Signature(TypedDict):
    format: str
    namespace: str
    armored: str


# manifest.schema.json /entries[]
class _ManifestEntry(TypedDict):
    id: str
    workload: str
    mode: str
    status: str
    file: str | None
    sha256: str | None


class ManifestEntry(_ManifestEntry, total=False):
    schema_problems: list[str]
    rejected: str
    disturbed: bool | None
    error: str


# audit.schema.json /
class _VerdictDoc(TypedDict):
    schema_version: str
    kind: str
    audit_version: str
    submitted: SubmittedRecord
    mode: str
    image: AuditImage
    tolerances: TolerancesRecord
    checks: list[CheckRecord]
    metrics: list[MetricRecord]
    reruns: list[RerunRecord]
    summary: VerdictSummary
    verdict: str
    out_dir: str
    started_at: str
    ended_at: str
    sha256: str


class VerdictDoc(_VerdictDoc, total=False):
    signature: Signature


# audit.schema.json /submitted
class _SubmittedRecord(TypedDict):
    path: str
    run_id: str | None
    vendor: str | None
    results: list[str]
    image: ImageInfo | None


class SubmittedRecord(_SubmittedRecord, total=False):
    only: str | None
    result_sha256: dict[str, str]
    bench_version: str | None
    git_commit: str | None
    source_sha256: str | None


# audit.schema.json /image
class AuditImage(TypedDict):
    requested: str | None
    ref: str | None
    digest: str | None
    labels: dict[str, str]


# audit.schema.json /tolerances
class _TolerancesRecord(TypedDict):
    path: str
    sha256: str
    caching: JsonObject


class TolerancesRecord(_TolerancesRecord, total=False):
    statistics: JsonObject
    reruns: JsonObject
    noise: JsonObject
    bands: dict[str, JsonObject]
    ignore: dict[str, str]
    rules: list[Band]


# audit.schema.json /checks[]
class CheckRecord(TypedDict):
    id: str
    category: str
    subject: str
    status: str
    message: str


# audit.schema.json /metrics[]
class _MetricRecord(TypedDict):
    entry: str
    point: Params | None
    metric: str
    unit: str | None
    submitted: float | bool | None
    remeasured: float | bool | None
    deviation: float | None
    interval: Interval
    reruns: int
    tolerance: Band | None
    status: str
    reason: str


class MetricRecord(_MetricRecord, total=False):
    decidable: bool | None
    repeats_to_decide: int | None
    predicted: str | None
    declared: Declared
    power: PowerRecord


# audit.schema.json /metrics[]/interval
class _Interval(TypedDict):
    method: str
    scale: str
    estimate: float
    low: float
    high: float
    level: float
    df: int
    n_submitted: int
    n_remeasured: int
    spread: float
    cv_submitted: float | None
    cv_remeasured: float | None


class Interval(_Interval, total=False):
    spread_submitted: float | None


# audit.schema.json /metrics[]/declared
class _Declared(TypedDict):
    direction: str
    aggregation: str
    host_load: str
    unit: str


class Declared(_Declared, total=False):
    band: str
    family: str


# audit.schema.json /metrics[]/power
class _PowerRecord(TypedDict):
    probability: float
    inflation: float | None
    n_submitted: int
    n_remeasured: int
    spread: float


class PowerRecord(_PowerRecord, total=False):
    basis: str
    reason: str


# audit.schema.json /reruns[]
class RerunRecord(TypedDict):
    name: str
    dir: str
    exit_code: int | None
    error: str | None
    results: list[str]
    rules: dict[str, Params]
    throughput_cv: dict[str, float | None]
    host: RerunHost


# audit.schema.json /reruns[]/host
class RerunHost(TypedDict, total=False):
    cpus: int
    duration_s: float
    load_avg_1m: Info | None
    cpu_pressure_avg10_max: float | None
    busy_cpus_mean: float | None
    rerun_cpus_mean: float | None
    other_cpus_mean: float | None
    cpu_wait_fraction: float | None
    slowdown: float | None
    entry_slowdown: dict[str, float | None]
    entry_cpu_demand: dict[str, float | None]
    entry_load_factor: dict[str, float]
    contention_per_cpu_share: float


# audit.schema.json /summary
class _VerdictSummary(TypedDict):
    checks: dict[str, dict[str, int]]  # category -> status -> count
    metrics: dict[str, int]  # status -> count
    reasons: list[str]
    inconclusive: list[str]
    noise: NoiseSummary


class VerdictSummary(_VerdictSummary, total=False):
    submission_disturbed: SubmissionDisturbed
    power: PowerSummary


# audit.schema.json /summary/noise
class NoiseSummary(TypedDict):
    too_noisy: bool
    reasons: list[str]
    affected: list[str]


# audit.schema.json /summary/submission_disturbed
class SubmissionDisturbed(TypedDict):
    entries: list[DisturbedEntry]
    note: str


# audit.schema.json /summary/submission_disturbed/entries[]
class DisturbedEntry(TypedDict):
    entry: str
    reasons: list[str]


# audit.schema.json /summary/power
class PowerSummary(TypedDict):
    probability: float
    metric: str
    entries: list[PowerEntry]
    submission: list[SubmissionAllows]


# audit.schema.json /summary/power/entries[]
class PowerEntry(TypedDict):
    entry: str
    point: Params | None
    metric: str
    inflation: float
    status: str
    points: int


# audit.schema.json /summary/power/submission[]
class _SubmissionAllows(TypedDict):
    entry: str
    metric: str
    n_submitted: int
    first_rerun: float | None
    at_best: float | None
    probability: float


class SubmissionAllows(_SubmissionAllows, total=False):
    cv_submitted: float | None
    reason: str


# published.schema.json /
_PublishedDoc = TypedDict("_PublishedDoc", {
    "schema_version": "str", "kind": "str", "source": "PublishedSource", "import": "ImportRecord",
    "device": "PublishedDevice", "workload": "PublishedWorkload", "status": "str",
    "error": "PublishedError | None", "metrics": "dict[str, Cell]", "sha256": "str"})


class PublishedDoc(_PublishedDoc, total=False):
    assumptions: list[Assumption]


# published.schema.json /source
class _PublishedSource(TypedDict):
    title: str
    table: str
    page: int | str | None
    publisher: str
    role: str


class PublishedSource(_PublishedSource, total=False):
    url: str
    doi: str
    date: str | None
    notes: str


# published.schema.json /import
class ImportRecord(TypedDict):
    file: str
    file_sha256: str
    row: int
    shape: str
    imported_at: str
    bench_version: str


# published.schema.json /device
class _PublishedDevice(TypedDict):
    name: str
    vendor: str | None
    count: int
    spec: str | None


class PublishedDevice(_PublishedDevice, total=False):
    label: str
    system: str


# published.schema.json /workload
class _PublishedWorkload(TypedDict):
    id: str
    name: str
    mode: str
    group: str
    config: str
    params: Params
    item_unit: str
    precision_requested: str
    precision_used: str
    precision_reason: str | None
    overrides: Params
    info: PublishedInfo


class PublishedWorkload(_PublishedWorkload, total=False):
    unknowns: dict[str, str]


# published.schema.json /workload/info
class PublishedInfo(TypedDict, total=False):
    model: str
    framework: str
    registered: bool


# published.schema.json /error/oneOf/1
class PublishedError(TypedDict):
    type: str
    message: str


# published.schema.json /assumptions[]
class Assumption(TypedDict):
    fact: str
    value: str | int
    given: str
    covers: list[str]


# published.schema.json /$defs/cell
class _Cell(TypedDict):
    value: float | None
    unit: str
    status: str


class Cell(_Cell, total=False):
    as_published: str
    column: str
    method: str
    definition: str
    assumed: str
    reason: str


# device-spec.schema.json /
class _DeviceSpec(TypedDict):
    id: str
    vendor: str
    name: str
    match: list[str]
    memory_bytes: float | None
    memory_bandwidth_bytes_per_s: float | None
    power_limit_w: float | None
    peak_flops: PeakFlops
    sources: list[str]


class DeviceSpec(_DeviceSpec, total=False):
    form_factor: str | None
    devices_per_card: int
    host_link: str | None
    host_link_bytes_per_s: float | None
    interconnect: str | None
    interconnect_bytes_per_s: float | None
    power_min_w: float | None
    notes: str
    figure_sources: dict[str, str]
    estimate: SpecEstimate


# device-spec.schema.json /peak_flops
class PeakFlops(TypedDict, total=False):
    fp64: float | None
    fp32: float | None
    tf32: float | None
    fp16: float | None
    bf16: float | None
    int8: float | None


# device-spec.schema.json /estimate
class SpecEstimate(TypedDict):
    method: str


# --- records that are no schema's object, each where a schema's value comes from ---

# A metric map: metric name -> metric (a result's ``metrics``, a point's, a repeat's).
Metrics = Dict[str, Metric]  # noqa: UP006
# What the report and the store read as one result: measured here, or published.
AnyResultDoc = Union[ResultDoc, PublishedDoc]  # noqa: UP007
# The metric map of either, as read: measured metrics or published cells.
AnyMetrics = Mapping[str, Union[Metric, Cell]]  # noqa: UP007
# A result's ``function`` section: an operator suite's cases, a model check or several.
FunctionRecord = Union[FunctionCases, FunctionChecks, ModelCheck]  # noqa: UP007
# Any document the store ingests and a signature covers.
Document = Union[ResultDoc, ManifestDoc, VerdictDoc, PublishedDoc]  # noqa: UP007


class Window(TypedDict, total=False):
    """A timed window as a child measured it: monotonic seconds (the telemetry's clock) and
    wall-clock time (the runner adds ``start_s``/``end_s``: ``RepeatWindow``)."""

    start_mono: float
    end_mono: float
    start_wall: float
    end_wall: float
    duration_s: float


class HostThreads(TypedDict, total=False):
    """The thread pools and CPUs a repeat ran with (``bench.child.host_threads``)."""

    threads: int
    interop_threads: int
    cpus: str | None
    cpu_count: int | None
    env: dict[str, str]


class ScenarioRun(TypedDict, total=False):
    """One repeat's MLPerf scenario run (``bench.scenarios.measure``): LoadGen's verdict and
    what it printed, the batching, the search over the target rate."""

    name: str
    valid: bool
    verdict: str
    loadgen_version: str | None
    result: JsonObject  # LoadGen's summary fields, as LoadGen names them
    logs: dict[str, str]
    warmup: JsonObject
    batching: Info
    effective_settings: JsonObject  # LoadGen's effective_* settings, as it prints them
    attempts: list[JsonObject]
    retuned_hints: dict[str, float | None]
    search: Info


class RepeatResult(TypedDict, total=False):
    """One repeat as the child measured it (the runner adds ``index``, ``telemetry`` and
    ``contention``). ``bench.records.repeat_result`` keeps only these keys."""

    status: str
    error: ErrorRecord | None
    window: Window
    iterations: int
    items: float
    latencies_s: list[float]
    throughput_items_per_s: float
    streams: list[Info]  # one record per concurrent stream (a streams entry)
    scenario: ScenarioRun  # LoadGen's record of an MLPerf scenario entry (bench.scenarios)
    metrics: Metrics
    points: list[PointDoc]
    headline: Params
    setup_s: float  # results older than cold_start
    cold_start: ColdStart  # load_s (setup) and first_iter_s, in this fresh process
    host_threads: HostThreads  # the thread pools and CPUs the repeat ran with
    function: ModelCheck  # the model function check's verdict (first repeat)
    memory: Info
    device: DeviceInfo
    precision_used: str
    precision_reason: str | None
    info: Info
    series: dict[str, list[float]]
    devices_used: list[int]
    started_at: float
    ended_at: float
    index: int
    telemetry: WindowFigures  # the window's figures (the runner's ``window_telemetry``)
    contention: Contention  # what else used the machine in the window (bench.contention)


class Snapshot(TypedDict):
    """The sampler's samples of a span (``Sampler.snapshot``), columnar."""

    t_mono_s: list[float]
    t_s: list[float]
    t_wall: list[float]
    error_t_mono_s: list[float]
    devices: list[DeviceSeries]


class WindowCoverage(TypedDict, total=False):
    """How well one field was sampled over a window (``bench.results.window_coverage``)."""

    valid_samples: int
    expected_samples: int
    ratio: float | None
    max_gap_s: float | None
    bracketed: bool


class WindowFigures(TypedDict, total=False):
    """The telemetry figures of one timed window: one device's (``device_window``) or the
    entry's devices combined (``window_telemetry``, ``bench.telemetry.combine``)."""

    samples: int
    errors: int
    interval: IntervalStats
    coverage: dict[str, WindowCoverage]
    util_pct: float | None
    mem_used_bytes_mean: float | None
    mem_used_bytes_peak: float | None
    mem_used_pct_mean: float | None
    mem_used_pct_peak: float | None
    power_w: float | None
    host_util_pct: float | None
    host_mem_used_bytes_mean: float | None
    host_mem_used_bytes_peak: float | None
    temp_c: float | None
    clock_hz: float | None
    energy_integrated_j: float | None
    energy_integrated_reason: str | None
    energy_counter_j: float | None
    energy_counter_reason: str | None
    devices: list[WindowFigures]  # per device, where the entry used several
    index: int  # the device's, in ``devices``
    missing: list[str]  # nodes whose figures were absent (bench.multinode)


class IdleDevice(TypedDict, total=False):
    index: int
    power_w: float | None
    util_pct: float | None
    temp_c: float | None


class IdleRecord(TypedDict, total=False):
    """The idle baseline measured before the entries (``bench.runner.idle_record``)."""

    duration_s: float
    samples: int
    errors: int
    power_w: float | None
    util_pct: float | None
    temp_c: float | None
    energy_j: float | None
    power_scope: str | None
    reason: str
    devices: list[IdleDevice]


class _Band(TypedDict):
    band: str


class Band(_Band, total=False):
    """The band one metric is held to (``testbed.audit.tolerances.Rule.as_dict``)."""

    rel: float
    abs: float
    equal: bool
    ignore: str


class QuietThresholds(TypedDict, total=False):
    """The quiet thresholds a result was judged by (``bench.rules.QuietRules``)."""

    max_cv: float
    max_slowdown: float
    max_other_cpu_share: float
    max_steal_share: float
    max_throttled_share: float
    max_other_device_processes: int
    throttle_reasons: list[str]


class RuleChanges(TypedDict, total=False):
    """The run rules an audit's re-run changes (``testbed.audit.run``): more repeats and a
    longer window for more evidence, input variants for the caching check."""

    repeats: int
    min_duration_s: float
    timeout_s: float
    input_variants: int


class ProgressEvent(TypedDict, total=False):
    """A measuring process's progress line (``bench.events``): the phase and how far."""

    phase: str
    message: str
    done: int
    total: int
    min_iters: int
    elapsed_s: float
    min_duration_s: float


class CaseItem(TypedDict):
    """One operator call in one dtype variant, as the function suite hands it to a worker
    (``bench.function.worker.Case``)."""

    id: int
    op: str
    call: int
    variant: str


# A row as a function-suite worker or probe writes it (``bench.function``): the result's
# ``CaseRow`` plus the worker's bookkeeping (case id, seconds, stderr, placeholder marks),
# or a probe's verdict on one call (note, reference, ok).
WorkerRow = TypedDict("WorkerRow", {
    "case": "int", "op": "str", "call": "int", "variant": "str", "pass": "str",
    "class": "str", "seconds": "float | None", "message": "str", "stderr": "list[str]",
    "error_type": "str", "tolerance": "str", "max_abs_err": "float | None",
    "max_rel_err": "float | None", "err_over_tol": "float | None", "fallback": "list[str]",
    "only_if_backward": "bool", "note": "str", "reference": "Info | None", "ok": "bool",
}, total=False)

# A function-suite worker's line (``bench.function``): a case starts, or a row is done.
WorkerEvent = TypedDict("WorkerEvent", {"event": "str", "case": "int", "pass": "str",
                                        "row": "WorkerRow"}, total=False)
