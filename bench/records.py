"""The documents that cross the runner -> child -> result boundary, typed.

The runner asks a child process to measure one repeat with a ``RepeatSpec`` (a JSON file);
the child answers with a ``RepeatResult`` (a JSON file, written atomically). Nothing else
crosses: the child's backend and workload objects stay in the child. ``repeat_result`` is
the reading side: what a child wrote is checked and cut to the known fields before the runner
builds a result document from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypedDict

from bench.config import Entry
from bench.distributed import Placement
from bench.results import STATUSES


@dataclass(frozen=True)
class RepeatSpec:
    """What one child process measures: one repeat of one entry, placed by the launcher."""

    vendor: str
    entry: Entry
    seed: int
    repeat: int
    placement: Placement = field(default_factory=Placement)
    # An MLPerf scenario entry: where LoadGen writes its logs, and the run directory they
    # are named relative to (bench.scenarios).
    log_dir: str | None = None
    run_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"vendor": self.vendor, "entry": self.entry.to_dict(), "seed": self.seed,
                "repeat": self.repeat, "placement": self.placement.to_dict(),
                "log_dir": self.log_dir, "run_dir": self.run_dir}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RepeatSpec:
        return cls(vendor=data["vendor"], entry=Entry.from_dict(data["entry"]),
                   seed=int(data["seed"]), repeat=int(data["repeat"]),
                   placement=Placement.from_dict(data.get("placement") or {}),
                   log_dir=data.get("log_dir"), run_dir=data.get("run_dir"))


class ErrorRecord(TypedDict, total=False):
    type: str
    message: str
    traceback: list[str]
    signal: str


class Window(TypedDict, total=False):
    """A timed window: monotonic seconds (the telemetry's clock) and wall-clock time."""

    start_mono: float
    end_mono: float
    start_wall: float
    end_wall: float
    duration_s: float


class RepeatResult(TypedDict, total=False):
    """One repeat as the child measured it (the runner adds ``index``, ``telemetry`` and
    ``contention``)."""

    status: str
    error: ErrorRecord | None
    window: Window
    iterations: int
    items: float
    latencies_s: list[float]
    throughput_items_per_s: float
    streams: list[dict[str, Any]]  # one record per concurrent stream (a streams entry)
    scenario: dict[str, Any]  # LoadGen's record of an MLPerf scenario entry (bench.scenarios)
    metrics: dict[str, dict[str, Any]]
    points: list[dict[str, Any]]
    headline: dict[str, Any]
    setup_s: float  # results older than cold_start
    cold_start: dict[str, Any]  # load_s (setup) and first_iter_s, in this fresh process
    host_threads: dict[str, Any]  # the thread pools and CPUs the repeat ran with
    function: dict[str, Any]  # the model function check's verdict (first repeat)
    memory: dict[str, Any]
    device: dict[str, Any]
    precision_used: str
    precision_reason: str | None
    info: dict[str, Any]
    series: dict[str, list[float]]
    devices_used: list[int]
    started_at: float
    ended_at: float
    index: int
    telemetry: dict[str, Any]
    contention: dict[str, Any]  # what else used the machine in the window (bench.contention)


def repeat_result(data: Any) -> RepeatResult:
    """A ``RepeatResult`` from what a child wrote: a known status, the known fields only."""
    if not isinstance(data, dict) or data.get("status") not in STATUSES:
        got = data.get("status") if isinstance(data, dict) else type(data).__name__
        return RepeatResult(status="error", error=ErrorRecord(
            type="ChildResult", message=f"the child wrote no usable result (status {got!r})"))
    known = RepeatResult.__annotations__
    return RepeatResult(**{k: v for k, v in data.items() if k in known})  # type: ignore[typeddict-item]
