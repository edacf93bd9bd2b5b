"""``invoke site --out DIR``: a static leaderboard built from the store.

Pages (relative links, open from disk): ``index.html`` (workloads by mode and group, devices),
``workloads/<w>.html`` (devices ranked by throughput with the report's composite and
baseline-relative scores, marks and audit state; every figure links to its result document
and verdict), ``devices/<d>.html`` (the device's configurations and the history of its
figures across driver, torch and image versions), ``runs.html``, ``audits/<id>.html`` and
the documents themselves (``documents/<id>.json``, ``audits/<id>.json``) byte for byte.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bench.errors import UserError
from bench.jsonio import atomic_write_bytes, atomic_write_text
from testbed.report.inputs import Device, label_devices
from testbed.store.queries import Filters, list_runs
from testbed.store.rows import VERSION_FACTS
from testbed.store.site import render
from testbed.store.site.changes import change_badges, changes_page, site_changes
from testbed.store.site.data import (
    SiteData,
    StoredResult,
    audit_documents,
    doc_path,
    gather,
)
from testbed.store.store import Store

MARKER = ".leaderboard-site"
OWN = ("workloads", "devices", "documents", "audits", "changes")


@dataclass
class WrittenSite:
    index: Path
    workloads: int
    devices: int
    documents: int
    audits: int
    changes: int = 0  # changes found (testbed.store.changes)


def _prepare(out: Path) -> None:
    """A new directory, or one this command wrote before (its pages are replaced whole, so no
    page of an earlier, differently filtered site stays behind)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} exists and is not a directory.",
                        "Name a new directory with --out (or one `invoke site` wrote).")
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise UserError(f"{out} is not empty and holds no leaderboard site.",
                        "Name a new directory with --out (or one `invoke site` wrote).")
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name in OWN:
            shutil.rmtree(out / name, ignore_errors=True)
            (out / name).mkdir()
        (out / MARKER).write_text("written by invoke site\n", encoding="utf-8")
    except OSError as exc:
        raise UserError(f"Cannot write the site into {out}: {exc.strerror or exc}.",
                        "Choose another directory with --out.") from exc


def hardware_labels(data: SiteData) -> dict[str, str]:
    """A name per hardware (device configuration without its versions), as the report names
    devices."""
    devices = {}
    for key, members in data.hardware.items():
        facts = {k: v for k, v in data.devices[members[0]].facts.items()
                 if k not in VERSION_FACTS}
        devices[key] = Device(key, facts)
    return {k: d.label for k, d in label_devices(devices.values()).items()}


def write_site(store: Store, out: Path, f: Filters, baseline: str | None = None
               ) -> WrittenSite:
    _prepare(out)

    def keep(doc_id: str, data: bytes) -> None:
        atomic_write_bytes(out / doc_path(doc_id), data, durable=False, mkdir=True)

    data = gather(store, f, baseline, keep)
    workload_pages = {w: render.slug(w) + ".html" for w in data.boards}
    hardware = hardware_labels(data)
    hardware_pages = {h: render.slug(h) + ".html" for h in hardware}
    device_pages = {k: hardware_pages[h] for h, members in data.hardware.items()
                    for k in members}
    found = site_changes(store, f)
    for w, board in data.boards.items():
        atomic_write_text(out / "workloads" / workload_pages[w],
                          render.leaderboard(board, data, device_pages,
                                             change_badges(found, board.workload, data,
                                                           hardware_pages)))
    for h, label in hardware.items():
        atomic_write_text(out / "devices" / hardware_pages[h],
                          render.device_page(h, label, data, workload_pages,
                                             f"../changes/{hardware_pages[h]}"))
        atomic_write_text(out / "changes" / hardware_pages[h],
                          changes_page(label, found, h, set(data.results),
                                       f"../devices/{hardware_pages[h]}"))
    judged: dict[str, list[StoredResult]] = {}
    for res in data.results.values():
        if res.audit_id:
            judged.setdefault(res.audit_id, []).append(res)
    labels = {k: d.label for k, d in data.devices.items()}
    for audit_id, body in audit_documents(store, f):
        atomic_write_bytes(out / "audits" / f"{audit_id}.json", body, durable=False,
                           mkdir=True)
        atomic_write_text(out / "audits" / f"{audit_id}.html",
                          render.audit_page(audit_id, json.loads(body), judged[audit_id],
                                            labels))
    atomic_write_text(out / "runs.html", render.runs_page(list_runs(store, f)))
    generated = datetime.now(tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    index = out / "index.html"
    atomic_write_text(index, render.index_page(data, workload_pages, hardware, hardware_pages,
                                               generated, store.location.shown))
    return WrittenSite(index, len(data.boards), len(hardware), len(data.results), len(judged),
                       len(found.changes))
