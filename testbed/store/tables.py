"""The store's tables: the original documents, and what is derived from them for queries.

``documents`` holds every added document exactly as it was read (compressed), addressed by the
sha256 of its bytes. It never changes shape: a new kind of document is one more row kind. All
other tables are *derived*: extracted from the documents by ``testbed.store.rows``. When their
shape changes, ``DERIVED_VERSION`` goes up and the store rebuilds them from ``documents`` the
next time it is opened for writing, so an upgrade never needs a hand-written migration and
never loses a measurement.

Every column has a comment; ``invoke store list tables`` prints them and docs/store.md lists them.
Times are UTC without a time zone (the documents' own ISO strings stay in the documents).
JSON-valued columns are text: ``json_extract(params, '$.n')`` in DuckDB, ``params::jsonb``
in PostgreSQL.
"""

from __future__ import annotations

import sqlalchemy as sa

# Bump when a derived table or view changes: the store then rebuilds them from `documents`.
DERIVED_VERSION = 3

metadata = sa.MetaData()
H = sa.String(64)  # a sha256 in hex


def _c(name: str, type_: sa.types.TypeEngine | type, comment: str, **kw: object) -> sa.Column:
    return sa.Column(name, type_, comment=comment, **kw)


store_meta = sa.Table(
    "store_meta", metadata,
    _c("key", sa.String(64), "setting name (derived_version)", primary_key=True),
    _c("value", sa.Text, "its value"),
    comment="the store's own settings",
)

documents = sa.Table(
    "documents", metadata,
    _c("doc_id", H, "sha256 of the file's bytes: the document's address", primary_key=True),
    _c("kind", sa.String(64), "the document's kind field: bench.result, bench.manifest, "
                              "bench.audit, ...", nullable=False),
    _c("doc_schema", sa.String(64), "the schema it was validated against (schemas/NAME.schema"
                                ".json)", nullable=False),
    _c("run_id", sa.String(200), "the run it belongs to (audits: the run judged)"),
    _c("name", sa.String(255), "file name it was added as (re-exported under this name)",
       nullable=False),
    _c("source", sa.Text, "path it was first added from", nullable=False),
    _c("size_bytes", sa.Integer, "size of the original file", nullable=False),
    _c("body", sa.LargeBinary, "the original bytes, zlib-compressed", nullable=False),
    _c("added_at", sa.DateTime, "when it was added (UTC)", nullable=False),
    comment="every added document, byte for byte; all other tables are derived from these",
)

runs = sa.Table(
    "runs", metadata,
    _c("run_id", sa.String(200), "run id (results/<run-id>/)", primary_key=True),
    _c("suite", sa.String(200), "suite name"),
    _c("vendor", sa.String(32), "device backend"),
    _c("state", sa.String(32), "manifest state: finished, interrupted, running; null: no "
                               "manifest stored"),
    _c("started_at", sa.DateTime, "run start (UTC)"),
    _c("ended_at", sa.DateTime, "run end (UTC)"),
    _c("bench_version", sa.String(64), "bench version"),
    _c("manifest_id", H, "doc_id of the stored manifest (null: none)"),
    comment="one row per run: from its manifest, else from its first result",
)

results = sa.Table(
    "results", metadata,
    _c("doc_id", H, "documents.doc_id of the result document", primary_key=True),
    _c("seal", H, "the document's own sha256 (over its canonical body)", nullable=False,
       unique=True),
    _c("run_id", sa.String(200), "run id", nullable=False),
    _c("entry_id", sa.String(200), "suite entry id, e.g. resnet-infer", nullable=False),
    _c("workload", sa.String(100), "workload name, e.g. resnet", nullable=False),
    _c("mode", sa.String(16), "train or infer", nullable=False),
    _c("workload_group", sa.String(16), "cv, nlp, llm or micro", nullable=False),
    _c("config", sa.String(64), "named config, small or full", nullable=False),
    _c("item_unit", sa.String(64), "what throughput counts (images, tokens, FLOP, B)"),
    _c("precision_requested", sa.String(8), "precision the suite asked for"),
    _c("precision_used", sa.String(8), "precision measured"),
    _c("status", sa.String(16), "ok, oom, unsupported, timeout, error, killed, interrupted",
       nullable=False),
    _c("error", sa.Text, "error message when status is not ok"),
    _c("suite", sa.String(200), "suite name"),
    _c("suite_seed", sa.BigInteger, "suite seed"),
    _c("started_at", sa.DateTime, "result start (UTC)", nullable=False),
    _c("ended_at", sa.DateTime, "result end (UTC)"),
    _c("device_key", sa.Text, "the device configuration, as the report groups results "
                              "(testbed.report.inputs.device_key)", nullable=False),
    _c("hardware_key", sa.Text, "the device configuration without its driver, torch and image "
                                "versions: one line of history on the leaderboard",
       nullable=False),
    _c("device_facts", sa.Text, "JSON: the identity facts the device_key is made of"),
    _c("vendor", sa.String(32), "device backend", nullable=False),
    _c("device_name", sa.String(200), "device name"),
    _c("device_count", sa.Integer, "devices used"),
    _c("driver_version", sa.String(100), "driver version"),
    _c("sdk_version", sa.String(200), "SDK version"),
    _c("torch_version", sa.String(100), "torch build"),
    _c("image_tag", sa.String(300), "image tag (null: native)"),
    _c("image_digest", sa.String(80), "image digest sha256:... (null: native or unknown)"),
    _c("native", sa.Boolean, "measured outside an image"),
    _c("label", sa.String(64), "run label (--label)"),
    _c("bench_version", sa.String(64), "bench version"),
    _c("git_commit", sa.String(64), "git commit of the bench sources"),
    _c("source_sha256", H, "hash of the bench sources"),
    _c("host_cpu", sa.String(200), "host CPU model"),
    _c("telemetry_backend", sa.String(64), "telemetry adapter used"),
    _c("telemetry_interval_s", sa.Double, "requested sampling interval"),
    _c("telemetry_samples", sa.Integer, "telemetry samples taken"),
    _c("telemetry_errors", sa.Integer, "failed telemetry readings"),
    _c("overrides", sa.Text, "JSON: parameters overridden with --set (non-comparable)"),
    _c("params", sa.Text, "JSON: the workload's parameters"),
    _c("disturbed", sa.Boolean, "the run found the measurement disturbed (other processes, "
                                "steal, throttling, a repeat spread: docs/measurement.md); "
                                "null: the result does not say"),
    _c("in_manifest", sa.String(16), "listed: its run's stored manifest lists it with this "
                                     "sha256; pending: a manifest written while the run went "
                                     "on; no manifest: none stored; not listed: the manifest "
                                     "lists another, so it is set apart (never counted)"),
    sa.Index("ix_results_run", "run_id"),
    sa.Index("ix_results_workload", "entry_id", "config"),
    sa.Index("ix_results_device", "device_key"),
    comment="one row per result document: what ran, where, with which provenance",
)

metrics = sa.Table(
    "metrics", metadata,
    _c("doc_id", H, "results.doc_id", primary_key=True),
    _c("metric", sa.String(100), "metric name (units in the name and in unit)",
       primary_key=True),
    _c("value", sa.Double, "the value (booleans as 1/0; null: not measured, see reason)"),
    _c("unit", sa.String(64), "unit"),
    _c("reason", sa.Text, "why value is null"),
    _c("n", sa.Integer, "repeats the value is over"),
    _c("std", sa.Double, "standard deviation over repeats"),
    _c("cv", sa.Double, "coefficient of variation over repeats"),
    sa.Index("ix_metrics_metric", "metric"),
    comment="every metric of every result, one row each (long form)",
)

points = sa.Table(
    "points", metadata,
    _c("doc_id", H, "results.doc_id", primary_key=True),
    _c("point", sa.Integer, "index of the grid point in the result", primary_key=True),
    _c("status", sa.String(16), "the point's status"),
    _c("params", sa.Text, "JSON: the point's parameters (batch, input_tokens, n, ...)"),
    _c("error", sa.Text, "error message when status is not ok"),
    comment="grid points of LLM grids and operator sweeps",
)

point_metrics = sa.Table(
    "point_metrics", metadata,
    _c("doc_id", H, "results.doc_id", primary_key=True),
    _c("point", sa.Integer, "points.point", primary_key=True),
    _c("metric", sa.String(100), "metric name", primary_key=True),
    _c("value", sa.Double, "the value (null: not measured)"),
    _c("unit", sa.String(64), "unit"),
    _c("reason", sa.Text, "why value is null"),
    comment="every metric of every grid point (long form)",
)

telemetry = sa.Table(
    "telemetry", metadata,
    _c("doc_id", H, "results.doc_id", primary_key=True),
    _c("device_index", sa.Integer, "device sampled", primary_key=True),
    _c("field", sa.String(64), "series: util_pct, power_w, mem_used_bytes, temp_c, ...",
       primary_key=True),
    _c("unit", sa.String(64), "unit of the series"),
    _c("samples", sa.Integer, "samples with a value"),
    _c("mean", sa.Double, "mean over the samples with a value"),
    _c("min", sa.Double, "smallest sample"),
    _c("max", sa.Double, "largest sample"),
    _c("unavailable", sa.Text, "why the device could not report this field"),
    comment="telemetry series summarised per result, device and field",
)

audits = sa.Table(
    "audits", metadata,
    _c("doc_id", H, "documents.doc_id of the verdict", primary_key=True),
    _c("seal", H, "the verdict's own sha256", nullable=False, unique=True),
    _c("run_id", sa.String(200), "the run judged"),
    _c("verdict", sa.String(32), "pass, fail, inconclusive", nullable=False),
    _c("mode", sa.String(16), "container or native re-run"),
    _c("audit_version", sa.String(64), "version that audited"),
    _c("image_digest", sa.String(80), "image re-run in"),
    _c("submitted_path", sa.Text, "the run directory judged"),
    _c("only_file", sa.String(255), "the one result file judged, if one was named"),
    _c("checks_failed", sa.Integer, "failed checks"),
    _c("metrics_passed", sa.Integer, "metrics within tolerance"),
    _c("metrics_failed", sa.Integer, "metrics outside tolerance"),
    _c("reasons", sa.Text, "JSON: one line per failed check or metric"),
    _c("started_at", sa.DateTime, "audit start (UTC)"),
    _c("ended_at", sa.DateTime, "audit end (UTC)", nullable=False),
    comment="one row per audit verdict",
)

audit_results = sa.Table(
    "audit_results", metadata,
    _c("audit_id", H, "audits.doc_id", primary_key=True),
    _c("entry_id", sa.String(200), "entry id judged", primary_key=True),
    _c("run_id", sa.String(200), "its run"),
    _c("seal", H, "the judged result's sha256 (null for verdicts that do not name it: then "
                  "the link is by run and entry)"),
    comment="which results an audit judged",
)

manifest_entries = sa.Table(
    "manifest_entries", metadata,
    _c("manifest_id", H, "documents.doc_id of the manifest", primary_key=True),
    _c("entry_id", sa.String(200), "entry id", primary_key=True),
    _c("run_id", sa.String(200), "its run"),
    _c("status", sa.String(16), "the entry's status in the manifest"),
    _c("seal", H, "the sha256 of the result the manifest lists (null: none, or pending)"),
    comment="the results each stored manifest lists, by their sha256",
)

signatures = sa.Table(
    "signatures", metadata,
    _c("doc_id", H, "documents.doc_id of a verdict or manifest", primary_key=True),
    _c("status", sa.String(16), "verified: signed by a key of the store's trust file; "
                                "unverified: signed, but not by a trusted key (or broken); "
                                "unsigned", nullable=False),
    _c("principal", sa.String(255), "who signed it, as the trust file names the key"),
    _c("reason", sa.Text, "why it is not verified"),
    comment="who signed each verdict and manifest (checked again when the trust file changes)",
)

DERIVED = (runs, results, metrics, points, point_metrics, telemetry, audits, audit_results,
           manifest_entries, signatures)

# Views: plain SQL that DuckDB and PostgreSQL both run.
VIEWS = {
    "result_audits": (
        "one row per (result, audit that judged it): verdicts signed by a trusted key only",
        """
        SELECT r.doc_id AS result_id, a.doc_id AS audit_id, a.verdict, a.ended_at AS audited_at,
               s.principal AS audited_by
        FROM results r
        JOIN audit_results l ON l.seal = r.seal
            OR (l.seal IS NULL AND l.run_id = r.run_id AND l.entry_id = r.entry_id)
        JOIN audits a ON a.doc_id = l.audit_id
        JOIN signatures s ON s.doc_id = a.doc_id AND s.status = 'verified'
        """,
    ),
    "result_latest_audit": (
        "the latest audit of each audited result",
        """
        SELECT result_id, audit_id, verdict, audited_at, audited_by FROM (
            SELECT ra.*, ROW_NUMBER() OVER (PARTITION BY result_id
                                            ORDER BY audited_at DESC, audit_id) AS k
            FROM result_audits ra) t
        WHERE k = 1
        """,
    ),
}
