"""How long schema validation takes per document, engine by engine (``invoke bench-validate``).

Each document is read and parsed once, then validated in interleaved rounds by the
reference engine alone (``jsonschema``: what every document cost before the compiled engine),
by the compiled one alone (``jsonschema-rs``) and by what the test-bed runs
(``bench.schema.validation_errors``: the compiled engine accepts, the reference explains a
refusal). The figures are per document, the median over rounds, beside the time to parse it.
By default the documents are generated results as the store ingests them
(``testbed.store.loadtest.generate``: results, manifests and audit verdicts).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.jsonio import parse_json_document, read_document_bytes
from bench.schema import fast_validator, fast_verdict, reference_errors, validation_errors
from bench.validate import find_files, schema_for


def load(paths: list[Path]) -> list[tuple[Path, bytes, Any, str]]:
    out = []
    for found in find_files(paths):
        data = read_document_bytes(found.path, found.root)
        doc = parse_json_document(data)
        out.append((found.path, data, doc, schema_for(doc, found.path)))
    return out


def per_document_s(docs: list[tuple[Path, bytes, Any, str]], rounds: int) -> dict[str, Any]:
    """Median seconds per document of each way, over ``rounds`` interleaved rounds."""
    ways: dict[str, Callable[[bytes, Any, str], object]] = {
        "parse": lambda data, _doc, _schema: parse_json_document(data),
        "jsonschema": lambda _data, doc, schema: reference_errors(doc, schema),
        "jsonschema-rs": lambda _data, doc, schema: fast_verdict(doc, schema),
        "test-bed": lambda _data, doc, schema: validation_errors(doc, schema),
    }
    for _path, _data, doc, schema in docs[:1]:  # compile the validators before timing
        for way in ways.values():
            way(b"{}", doc, schema)
    times: dict[str, list[float]] = defaultdict(list)
    for r in range(rounds):
        order = list(ways) if r % 2 == 0 else list(reversed(ways))
        for name in order:
            way = ways[name]
            start = time.perf_counter()
            for _path, data, doc, schema in docs:
                way(data, doc, schema)
            times[name].append((time.perf_counter() - start) / len(docs))
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m testbed.schema_speed", description=__doc__)
    p.add_argument("paths", nargs="*", help="documents or run directories (default: generated "
                                            "results)")
    p.add_argument("--results", type=int, default=300, help="generated results (default 300)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    args = p.parse_args(argv)
    if fast_validator("result") is None:
        raise UserError("jsonschema-rs is not installed here (or BENCH_SCHEMA_ENGINE says "
                        "jsonschema), so there is nothing to compare.",
                        "pip install jsonschema-rs, or unset BENCH_SCHEMA_ENGINE.")
    with tempfile.TemporaryDirectory(prefix="schema-speed-") as tmp:
        paths = [Path(x) for x in args.paths]
        if not paths:
            from testbed.store.loadtest import generate

            generate(args.results, Path(tmp), seed=0)
            paths = [Path(tmp)]
        docs = load(paths)
    if not docs:
        raise UserError(f"No JSON documents in {', '.join(map(str, paths))}.",
                        "Give result files or run directories.")
    load1 = os.getloadavg()
    kinds = defaultdict(list)
    for d in docs:
        kinds[d[3]].append(d)
    print(f"load {load1[0]:.2f} on {os.cpu_count()} CPUs; {len(docs)} document(s), "
          f"{sum(len(d[1]) for d in docs) / len(docs) / 1024:.1f} KiB each on average; "
          f"median of {args.rounds} interleaved rounds, ms per document")
    print(f"{'schema':<10} {'docs':>5} {'parse':>8} {'jsonschema':>11} {'jsonschema-rs':>14} "
          f"{'test-bed':>9} {'speed-up':>9}")
    for schema, group in sorted(kinds.items()):
        t = per_document_s(group, args.rounds)
        print(f"{schema:<10} {len(group):>5} {t['parse'] * 1e3:>8.3f} "
              f"{t['jsonschema'] * 1e3:>11.3f} {t['jsonschema-rs'] * 1e3:>14.3f} "
              f"{t['test-bed'] * 1e3:>9.3f} {t['jsonschema'] / t['test-bed']:>8.1f}x")
    print(f"load {os.getloadavg()[0]:.2f} after")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
