"""What ``invoke store ...`` prints: thin shells over ingest, queries and export."""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from bench.errors import UserError, printable
from testbed.report.fmt import format_value
from testbed.store import tables as t
from testbed.store.ingest import AddSummary, add_paths
from testbed.store.queries import (
    QUERY_TIMEOUT_S,
    Filters,
    QueryResult,
    list_results,
    list_runs,
    read_only_query,
)
from testbed.store.store import Store, open_store

PROGRESS_EVERY_S = 2.0


def table_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Rows as aligned columns (the last column is not padded)."""
    cells = [[_text(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
              for r in cells]
    return "\n".join(lines)


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float):
        return f"{value:.6g}"
    return printable(str(value))  # stored text is someone else's: no escape sequences


def add(store: Store, paths: list[Path], out: TextIO = sys.stdout,
        quiet: bool = False) -> AddSummary:
    """Add documents and print what happened; refused files with every reason."""
    last = [time.monotonic()]

    def progress(done: int, total: int) -> None:
        if not quiet and total > 200 and time.monotonic() - last[0] > PROGRESS_EVERY_S:
            last[0] = time.monotonic()
            print(f"store: {done}/{total} files", file=out, flush=True)

    summary = add_paths(store, paths, progress)
    print_summary(store, summary, out)
    return summary


def print_summary(store: Store, summary: AddSummary, out: TextIO = sys.stdout) -> None:
    added = ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in
                      sorted(summary.added.items())) or "nothing new"
    print(f"store: {added} added to {store.location.shown}"
          + (f"; {len(summary.present)} already stored" if summary.present else "")
          + (f"; {len(summary.refused)} refused" if summary.refused else ""), file=out)
    for path, schema, principal in summary.signed:
        what = "audited" if schema == "audit" else "submitted"
        print(f"  {what} by {printable(principal)}: {printable(str(path))} (signature "
              "verified)", file=out)
    for path, schema, why in summary.claims:
        what = "verdict" if schema == "audit" else "manifest"
        print(f"  UNSIGNED CLAIM {printable(str(path))}: this {what} counts for nothing "
              f"({printable(why)})", file=out)
    if summary.apart:
        print(f"  {len(summary.apart)} stored result(s) set apart: their run's manifest, "
              "added now, lists other results in their place (never counted)", file=out)
    for refused in summary.refused:
        print(f"  REFUSED {printable(str(refused.path))}:", file=out)
        for problem in refused.problems[:5]:
            print(f"    {printable(problem)}", file=out)
        if len(refused.problems) > 5:
            print(f"    ... and {len(refused.problems) - 5} more", file=out)


def _shown(what: str, n: int, limit: int | None, store: Store) -> str:
    if limit and n > limit:
        return (f"the newest {limit} of {n} {what}(s) in {store.location.shown} "
                "(--limit 0 shows all)")
    return f"{n} {what}(s) in {store.location.shown}"


def print_runs(store: Store, f: Filters, limit: int | None, out: TextIO = sys.stdout) -> int:
    runs = list_runs(store, f)
    total = len(runs)
    runs = runs[:limit] if limit else runs
    rows = [[r.run_id, r.started_at, r.suite, r.vendor, "; ".join(r.devices) or "—",
             f"{r.ok}/{r.results}", r.state or "no manifest",
             f"{r.audit} {r.audited_at:%Y-%m-%d}" if r.audit and r.audited_at else r.audit,
             r.submitted_by or "unsigned"]
            for r in runs]
    print(table_text(["run", "started (UTC)", "suite", "vendor", "device", "ok", "state",
                      "audit", "submitted by"], rows), file=out)
    print(_shown("run", total, limit, store), file=out)
    return len(runs)


def print_results(store: Store, f: Filters, limit: int | None,
                  out: TextIO = sys.stdout) -> int:
    results = list_results(store, f)
    total = len(results)
    results = results[:limit] if limit else results
    rows = [[r.started_at, r.entry_id if r.config == "small" else f"{r.entry_id} ({r.config})",
             r.device, format_value(r.headline, r.unit or "") if r.status == "ok" else r.status,
             {True: "yes", False: "no"}.get(r.disturbed, "unknown"),
             f"{r.audit} ({r.audited_by})" if r.audit else None, r.run_id,
             r.doc_id[:12]] for r in results]
    print(table_text(["started (UTC)", "workload", "device", "throughput", "disturbed", "audit",
                      "run", "document"], rows), file=out)
    print(_shown("result", total, limit, store), file=out)
    return len(results)


TYPE_NAMES = {"String": "text", "Text": "text", "Double": "double", "Integer": "integer",
              "BigInteger": "bigint", "Boolean": "boolean", "DateTime": "timestamp (UTC)",
              "LargeBinary": "blob"}


def _type(col: Any) -> str:
    return TYPE_NAMES.get(type(col.type).__name__, type(col.type).__name__.lower())


def schema_text() -> str:
    """Every table and view with its columns and what they mean."""
    parts = []
    for table in t.metadata.tables.values():
        parts.append(f"{table.name}: {table.comment}")
        for col in table.columns:
            key = " (key)" if col.primary_key else ""
            parts.append(f"  {col.name:<22} {_type(col):<16} {col.comment}{key}")
    for view, (comment, _) in t.VIEWS.items():
        parts.append(f"{view} (view): {comment}")
    return "\n".join(parts)


def schema_markdown() -> str:
    """The same as Markdown tables: docs/store.md holds exactly this (a test compares)."""
    parts = []
    for table in t.metadata.tables.values():
        parts += [f"**`{table.name}`**: {table.comment}", "",
                  "| column | type | meaning |", "|---|---|---|"]
        parts += [f"| `{c.name}`{' (key)' if c.primary_key else ''} | {_type(c)} | "
                  f"{c.comment} |" for c in table.columns]
        parts.append("")
    parts += ["Views:", ""]
    parts += [f"- **`{view}`**: {comment}" for view, (comment, _) in t.VIEWS.items()]
    return "\n".join(parts) + "\n"


def print_query(result: QueryResult, fmt: str, out: TextIO = sys.stdout) -> None:
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([printable(c) for c in result.columns])
        writer.writerows([printable(v, newlines=True) if isinstance(v, str) else v for v in row]
                         for row in result.rows)
    elif fmt == "json":
        json.dump([dict(zip(result.columns, row, strict=True)) for row in result.rows], out,
                  default=str, indent=1)
        out.write("\n")
    else:
        print(table_text(result.columns, result.rows) if result.columns else "(no rows)",
              file=out)
    if result.truncated:
        print(f"(first {len(result.rows)} rows; add LIMIT/OFFSET for the rest)",
              file=sys.stderr)


def query(store_arg: str | None, root: Path, sql: str, fmt: str = "table",
          limit: int = 10_000, out: TextIO = sys.stdout,
          timeout_s: float = QUERY_TIMEOUT_S) -> None:
    if fmt not in ("table", "csv", "json"):
        raise UserError(f"--format {fmt!r} is not table, csv or json.", "Pick one of them.")
    with open_store(store_arg, root, read_only=True) as store:
        print_query(read_only_query(store, sql, limit, timeout_s), fmt, out)


def export(store: Store, out: Path, f: Filters, parquet: bool, documents: bool,
           stream: TextIO = sys.stdout) -> None:
    from bench.paths import make_writable_dir
    from testbed.store.export import export_documents, export_parquet, select_documents

    make_writable_dir(out, "Export directory", "Name a directory with `invoke store export DIR`.")
    try:
        if documents:
            ids = select_documents(store, f) if f != Filters() else None
            written = export_documents(store, out / "documents", ids)
            print(f"export: {len(written)} document(s) into {out / 'documents'}", file=stream)
        if parquet:
            tables = export_parquet(store, out / "parquet")
            print(f"export: {len(tables)} Parquet table(s) into {out / 'parquet'}",
                  file=stream)
    except OSError as exc:
        raise UserError(f"Cannot export into {out}: {exc.strerror or exc} "
                        f"({exc.filename or out}).", "Choose another directory.") from exc
