"""``invoke report --from-store``: the report's own pipeline, fed with stored documents.

The matching documents are written, byte for byte, into ``<report>/documents/`` (and the
baseline device's into ``<report>/baseline/``), and the report reads them from there exactly
as it reads a run directory: validated again, checked, scored. The report directory then holds
the very documents it was made from.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from bench.errors import UserError
from testbed.store.export import export_documents, select_documents
from testbed.store.queries import Filters, list_results
from testbed.store.store import Store

MARKER = ".from-store"


def _fresh(directory: Path) -> None:
    """Documents of an earlier report from the store must not mix into this one; a directory
    this code did not write is never removed."""
    if directory.exists():
        if not (directory / MARKER).exists():
            raise UserError(f"{directory} exists and was not written by a report from the "
                            "store.", "Choose another report directory with --out.")
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    (directory / MARKER).write_text("documents exported from the results store\n",
                                    encoding="utf-8")


def export_for_report(store: Store, f: Filters, baseline: list[str], out: Path
                      ) -> tuple[list[Path], list[Path]]:
    """The documents a report from the store reads: (results paths, baseline paths)."""
    ids = select_documents(store, f, audits=False)
    if not ids:
        raise UserError(f"No result in the store {store.location.shown} matches these filters.",
                        "Loosen them; `invoke store list results` shows what is stored.")
    docs, base = out / "documents", out / "baseline"
    _fresh(docs)
    _fresh(base)
    export_documents(store, docs, ids)
    if not baseline:
        return [docs], []
    bf = replace(f, device=tuple(baseline))
    devices = {r.device for r in list_results(store, bf)}
    if len(devices) != 1:
        raise UserError(f"--baseline {' '.join(baseline)} matches {len(devices)} devices in the "
                        f"store{': ' + '; '.join(sorted(devices)) if devices else ''}.",
                        "Name exactly one device (`invoke store list results` shows them).")
    export_documents(store, base, select_documents(store, bf, audits=False))
    return [docs], [base]
