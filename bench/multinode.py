"""One result for a multi-rank entry that ran on several nodes, from each node's result.

Every node of a multi-node entry runs the same entry under its own runner and writes its own
result: the measured figures are the whole job's on every node (the ranks agree on them after
each point), but each node's telemetry covers only its own devices, on its own monotonic
clock. The combined result is the first node's, with

- every other node's telemetry kept under ``telemetry.nodes`` (per-device series as sampled);
- each timed window's figures taken on every node over that node's own record of the same
  window (its start and end on the node's clock: the ranks run the window in lockstep), then
  combined across nodes as across devices (``bench.telemetry.combine``: power and energy
  summed), per repeat and per grid point;
- the entry's metrics re-derived from those combined windows, with the idle baseline summed
  over the nodes;

so the entry's power and energy are those of every device on every node. A node that wrote
no result leaves the sums null, with the node named, never a partial sum. The entry was
disturbed when any node's measurement was (each node's reasons, named by node).
"""

from __future__ import annotations

import copy
import math
from typing import Any

from bench.contention import combine_disturbed
from bench.documents import IdleRecord, NodeRanks, ResultDoc, WindowFigures
from bench.jsonio import sanitize, seal
from bench.results import (
    POINT_TELEMETRY_NAMES,
    TelemetryContext,
    build_metrics,
    point_telemetry_metrics,
    window_telemetry,
)
from bench.telemetry.combine import combine_figures


def node_context(doc: ResultDoc) -> TelemetryContext:
    """A node's telemetry as recorded in its result, on that node's clock relative to its
    own origin (windows use ``start_s``/``end_s``, the same origin)."""
    tel = doc["telemetry"]
    snap = {"t_mono_s": tel["t_s"], "devices": tel["devices"],
            "error_t_mono_s": tel.get("errors_t_s", [])}
    devices = (doc.get("placement") or {}).get("devices")
    return TelemetryContext(snapshot=snap, interval_s=tel["interval"]["requested_s"],
                            unavailable=dict(tel.get("unavailable") or {}),
                            scope=dict(tel.get("scope") or {}),
                            not_the_device=tel.get("not_the_device"),
                            devices=tuple(devices) if devices else None)


def _node_name(doc: ResultDoc) -> str:
    return str((doc.get("placement") or {}).get("node") or "?")


def _missing_figures(missing: list[str]) -> WindowFigures:
    why = f"no telemetry from node(s) {', '.join(missing)} (no result written there)"
    return {"samples": 0, "errors": 0, "interval": {}, "power_w": None,
            "energy_integrated_j": None, "energy_integrated_reason": why,
            "energy_counter_j": None, "energy_counter_reason": why}


def combined_window(docs: list[ResultDoc], contexts: list[TelemetryContext],
                    windows: list[WindowFigures | None], missing: list[str]) -> WindowFigures:
    """One window's figures over every node (``windows[i]`` is node i's record of it)."""
    figures = [window_telemetry(ctx, w["start_s"], w["end_s"])
               for ctx, w in zip(contexts, windows, strict=True) if w is not None]
    names = [f"node {_node_name(d)}" for d, w in zip(docs, windows, strict=True)
             if w is not None]
    absent = [_node_name(d) for d, w in zip(docs, windows, strict=True) if w is None]
    if missing or absent:
        figures.append(_missing_figures(missing + absent))
        names.append(f"node(s) {', '.join(missing + absent)}")
    out = {**figures[0], **combine_figures(figures, names=names)}
    out["nodes"] = [{"node": _node_name(d), **{k: v for k, v in f.items()
                                               if k not in ("coverage", "devices")}}
                    for d, f in zip(docs, figures, strict=False)]
    return out


def _idle_sum(docs: list[ResultDoc], missing: list[str]) -> IdleRecord | None:
    idles = [d["telemetry"].get("idle") for d in docs]
    if not idles[0]:
        return None
    powers = [(i or {}).get("power_w") for i in idles]
    out = {**idles[0], "nodes": [{"node": _node_name(d), "power_w": p}
                                 for d, p in zip(docs, powers, strict=True)]}
    if missing or any(p is None for p in powers):
        out["power_w"] = None
        out["reason"] = (idles[0] or {}).get("reason") or \
            f"no idle power from node(s) {', '.join(missing) or 'of this entry'}"
    else:
        out["power_w"] = math.fsum(powers)
    return out


def _nth(items: list[dict[str, Any]], index: int, key: str) -> dict[str, Any] | None:
    return items[index].get(key) if index < len(items) else None


def nodes_in_job_order(nodes: list[NodeRanks], docs: list[ResultDoc]
                       ) -> list[NodeRanks]:
    """The ranks on each node, in the job's node order, each with its node rank in the job.

    torchrun's c10d rendezvous numbers the ranks in the order the nodes arrive, so the first
    node of the job (the one whose result this is: ``placement.node``) need not hold rank 0;
    giving each node its job rank beside its ranks says so instead of looking contradictory."""
    job_rank = {_node_name(d): (d.get("placement") or {}).get("node_rank") for d in docs}
    out = [{**n, **({"node_rank": job_rank[n["node"]]}
                    if isinstance(job_rank.get(n["node"]), int) else {})} for n in nodes]
    return sorted(out, key=lambda n: (n.get("node_rank") is None, n.get("node_rank") or 0))


def combine_node_results(docs: list[ResultDoc], vendor: str,
                         missing: list[str] | None = None) -> ResultDoc:
    """The entry's result from its nodes' results (``docs[0]`` the first node's); ``missing``
    names nodes that took part but wrote nothing."""
    missing = list(missing or [])
    doc = copy.deepcopy(docs[0])
    contexts = [node_context(d) for d in docs]
    repeats = doc["repeats"]
    for i, rep in enumerate(repeats):
        if rep["status"] == "ok" and "window" in rep:
            windows = [_nth(d["repeats"], i, "window") for d in docs]
            rep["telemetry"] = combined_window(docs, contexts, windows, missing)
    first = contexts[0]
    unavailable: dict[str, str] = {}
    for ctx in contexts:
        for key, value in ctx.unavailable.items():
            unavailable.setdefault(key, value)
    not_the_device = next((c.not_the_device for c in contexts if c.not_the_device), None)
    tel = TelemetryContext(snapshot={}, interval_s=first.interval_s, unavailable=unavailable,
                           scope=first.scope, not_the_device=not_the_device)
    idle = _idle_sum(docs, missing)
    doc["metrics"] = build_metrics(repeats, tel, doc["workload"]["item_unit"], vendor,
                                   doc["rules"]["host_bound_util_pct"], idle)
    for j, point in enumerate(doc.get("points") or []):
        per_node = [_nth(d.get("points") or [], j, "windows") or [] for d in docs]
        if not per_node[0]:
            continue
        figures = [combined_window(docs, contexts,
                                   [ws[k] if k < len(ws) else None for ws in per_node], missing)
                   for k in range(len(per_node[0]))]
        point["metrics"] = {k: v for k, v in point["metrics"].items()
                            if k not in POINT_TELEMETRY_NAMES}
        point_telemetry_metrics(point, figures, tel, doc["workload"]["item_unit"])
    doc["telemetry"]["idle"] = idle
    doc["telemetry"]["nodes"] = [
        {"node": _node_name(d), "backend": d["telemetry"]["backend"],
         "origin_mono_s": d["telemetry"].get("origin_mono_s"), "t_s": d["telemetry"]["t_s"],
         "t_wall": d["telemetry"]["t_wall"], "devices": d["telemetry"]["devices"],
         "idle": d["telemetry"].get("idle"), "errors": d["telemetry"].get("errors")}
        for d in docs[1:]]
    disturbed = combine_disturbed([(_node_name(d), d.get("disturbed")) for d in docs]
                                  + [(m, None) for m in missing])
    if disturbed is not None:
        doc["disturbed"] = disturbed
    doc["placement"]["nodes"] = nodes_in_job_order(doc["placement"].get("nodes") or [], docs)
    doc["placement"]["telemetry_devices"] = sum(
        len((d.get("placement") or {}).get("devices") or [0]) for d in docs)
    doc.pop("sha256", None)
    return seal(sanitize(doc))
