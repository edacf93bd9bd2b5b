"""A small store with planted changes (``testbed.store.loadtest.generate_history``), shared by
tests/test_changes.py and tests/test_changes_browser.py.

Two lines of history, 12 runs each (72 results): an A100 whose ResNet inference drops 20 %
with a new driver at run 6 (its other workloads see the same driver and do not move) and whose
torch build (and image) changes at run 9 without moving anything; an MLU370 whose GEMM drops
10 % at run 6 with nothing in the provenance changed. Run-to-run noise is 1 % so that the
steps are certain; some runs are disturbed, some audits failed, some GEMM figures impossible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from testbed.store import open_store
from testbed.store.ingest import add_paths, set_trust
from testbed.store.loadtest import (
    DEVICES,
    Hardware,
    History,
    Plant,
    auditor_key,
    generate_history,
)
from tests.conftest import ROOT

A100 = next(d for d in DEVICES if d.name.startswith("NVIDIA A100"))
MLU = next(d for d in DEVICES if d.vendor == "mlu")
HARDWARE = [Hardware(A100, 1, 0), Hardware(MLU, 1, 1)]
PLANTS = [Plant(0, "resnet-infer", 6, -0.20, "driver"),
          Plant(0, "resnet-train", 9, 0.0, "torch"),
          Plant(1, "gemm-infer", 6, -0.10, "none")]
RUNS = 12


@dataclass
class PlantedStore:
    store: str
    docs: Path
    history: History
    trust: Path  # the allowed_signers file that makes the signed verdicts audits


def build(root: Path) -> PlantedStore:
    docs = root / "history"
    key, trust = auditor_key(root)  # the failed audits count only when signed by a trusted key
    history = generate_history(docs, RUNS, PLANTS, seed=2, hardware=HARDWARE,
                               disturbed_share=0.1, failed_audit_share=0.3,
                               failed_check_share=0.15, run_noise=0.01, scorecard_every=0,
                               signer=key)
    path = str(root / "store.duckdb")
    with open_store(path, ROOT) as store:
        set_trust(store, trust)
        summary = add_paths(store, [docs])
    assert not summary.refused, summary.refused[:1]
    return PlantedStore(path, docs, history, trust)
