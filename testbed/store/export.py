"""Getting documents and tables out: the original files byte for byte, and Parquet tables.

Documents are written as ``<run-id>/<file name>`` (audit verdicts as
``audits/<audit directory>/verdict.json``), so an exported directory is again what
``invoke report``, ``invoke audit`` and ``invoke store add`` read. Every document's bytes are
checked against its address before they are written.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import sqlalchemy as sa

from bench.errors import UserError
from bench.jsonio import atomic_write_bytes
from testbed.store import tables as t
from testbed.store.queries import Filters, result_conditions
from testbed.store.store import Store, verified

PARQUET_TABLES = (*(tbl.name for tbl in t.DERIVED), "documents", *t.VIEWS)


def _safe(part: str | None, fallback: str) -> str:
    """One path component from stored text (never '..', never a separator)."""
    name = PurePosixPath(str(part or "")).name.replace("\\", "_")
    return name if name not in ("", ".", "..") else fallback


def relative_path(doc_schema: str, run_id: str | None, name: str, source: str) -> Path:
    if doc_schema == "audit":
        return Path("audits", _safe(PurePosixPath(source).parent.name, "audit"),
                    _safe(name, "verdict.json"))
    return Path(_safe(run_id, "no-run"), _safe(name, "document.json"))


def select_documents(store: Store, f: Filters, audits: bool = True) -> list[str]:
    """Document ids of the results matching ``f``, the manifests of their runs and (with
    ``audits``) the verdicts that judged them."""
    r = t.results.c
    d = t.documents.c
    la = sa.table("result_audits", sa.column("result_id"), sa.column("audit_id"))
    matching = sa.select(r.doc_id).where(*result_conditions(f))
    with store.begin() as conn:
        results = list(conn.execute(matching).scalars())
        if not results:
            return []
        runs = sa.select(r.run_id).where(r.doc_id.in_(matching))
        manifests = conn.execute(sa.select(d.doc_id).where(
            d.doc_schema == "manifest", d.run_id.in_(runs))).scalars()
        verdicts = conn.execute(sa.select(la.c.audit_id).distinct()
                                .where(la.c.result_id.in_(matching))).scalars() \
            if audits else []
        return [*results, *manifests, *verdicts]


def export_documents(store: Store, out: Path, doc_ids: Iterable[str] | None = None
                     ) -> list[Path]:
    """Write documents (all, or ``doc_ids``) under ``out`` exactly as they were added."""
    d = t.documents.c
    ids = None if doc_ids is None else list(dict.fromkeys(doc_ids))
    written: list[Path] = []
    taken: dict[Path, str] = {}
    query = sa.select(d.doc_id, d.doc_schema, d.run_id, d.name, d.source).order_by(
        d.added_at, d.doc_id)
    with store.begin() as conn:
        if ids is None:
            listing = conn.execute(query).all()
        else:  # in chunks: a server limits the parameters of one statement
            listing = [row for start in range(0, len(ids), 1000) for row in conn.execute(
                query.where(d.doc_id.in_(ids[start:start + 1000])))]
    for start in range(0, len(listing), 200):
        chunk = listing[start:start + 200]
        with store.begin() as conn:
            bodies = dict(conn.execute(sa.select(d.doc_id, d.body).where(
                d.doc_id.in_([row.doc_id for row in chunk]))).all())
        for row in chunk:
            data = verified(row.doc_id, bodies[row.doc_id])
            rel = relative_path(row.doc_schema, row.run_id, row.name, row.source)
            if taken.get(rel, row.doc_id) != row.doc_id or (
                    (old := existing_bytes(out / rel)) is not None and old != data):
                # Another document already has this name (e.g. a manifest rewritten while
                # its run went on): keep both, this one under its hash.
                rel = rel.with_name(f"{rel.stem}.{row.doc_id[:12]}{rel.suffix}")
            taken[rel] = row.doc_id
            target = out / rel
            try:
                if existing_bytes(target) != data:
                    atomic_write_bytes(target, data, mkdir=True)
            except OSError as exc:
                raise UserError(f"Cannot write {target}: {exc.strerror or exc}.",
                                "Choose another directory with --out.") from exc
            written.append(target)
    return written


def existing_bytes(path: Path) -> bytes | None:
    """The bytes of the file at ``path`` (None: nothing there). Something else there (a FIFO
    would block the read for ever, a directory) is a ``UserError``."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UserError(f"Cannot read {path}: {exc.strerror or exc}.",
                        "Choose another directory.") from exc
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{path} exists and is not a regular file (a FIFO, a directory or a "
                        "link): nothing is written over it.", "Choose another directory.")
    return path.read_bytes()


def export_parquet(store: Store, out: Path) -> list[Path]:
    """One Parquet file per table and view (``documents`` without the bodies: export the
    documents themselves with --documents)."""
    import duckdb
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    written = []
    with store.begin() as conn:
        for name in PARQUET_TABLES:
            if name == "documents":
                cols = [c for c in t.documents.c if c.name != "body"]
                frame = pd.read_sql(sa.select(*cols), conn)
            else:
                frame = pd.read_sql(sa.text(f"SELECT * FROM {name}"), conn)
            target = out / f"{name}.parquet"
            existing_bytes(target)  # a FIFO or a directory there: refused, not written into
            local = duckdb.connect()
            try:
                local.register("frame", frame)
                tmp = target.with_name(f".{target.name}.tmp")
                quoted = str(tmp).replace("'", "''")
                local.execute(f"COPY frame TO '{quoted}' (FORMAT parquet)")
                os.replace(tmp, target)
            finally:
                local.close()
            written.append(target)
    return written
