"""The documents that cross the runner -> child -> result boundary, typed.

The runner asks a child process to measure one repeat with a ``RepeatSpec`` (a JSON file);
the child answers with a ``RepeatResult`` (a JSON file, written atomically). Nothing else
crosses: the child's backend and workload objects stay in the child. ``repeat_result`` is
the reading side: what a child wrote is checked and cut to the known fields before the runner
builds a result document from it. The records themselves are in ``bench.documents``
(``RepeatResult``, ``Window``, ``ErrorRecord``), re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.config import Entry
from bench.distributed import Placement
from bench.documents import ErrorRecord, JsonObject, RepeatResult, Window
from bench.results import STATUSES

__all__ = ["ErrorRecord", "RepeatResult", "RepeatSpec", "Window", "repeat_result"]


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

    def to_dict(self) -> JsonObject:
        return {"vendor": self.vendor, "entry": self.entry.to_dict(), "seed": self.seed,
                "repeat": self.repeat, "placement": self.placement.to_dict(),
                "log_dir": self.log_dir, "run_dir": self.run_dir}

    @classmethod
    def from_dict(cls, data: JsonObject) -> RepeatSpec:
        return cls(vendor=data["vendor"], entry=Entry.from_dict(data["entry"]),
                   seed=int(data["seed"]), repeat=int(data["repeat"]),
                   placement=Placement.from_dict(data.get("placement") or {}),
                   log_dir=data.get("log_dir"), run_dir=data.get("run_dir"))


def repeat_result(data: Any) -> RepeatResult:
    """A ``RepeatResult`` from what a child wrote: a known status, the known fields only."""
    if not isinstance(data, dict) or data.get("status") not in STATUSES:
        got = data.get("status") if isinstance(data, dict) else type(data).__name__
        return RepeatResult(status="error", error=ErrorRecord(
            type="ChildResult", message=f"the child wrote no usable result (status {got!r})"))
    known = RepeatResult.__annotations__
    return RepeatResult(**{k: v for k, v in data.items() if k in known})  # type: ignore[typeddict-item]
