"""The scorecard's weights and baseline values: ``bench/specs/scorecard.yaml``, checked by
``schemas/scorecard.schema.json`` (one place for each; code holds none of them)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.schema import read_yaml_file

SETTINGS_FILE = Path(__file__).resolve().parents[2] / "bench" / "specs" / "scorecard.yaml"
ITEMS = ("training", "finetune", "inference_text", "inference_image", "communication",
         "checkpoint")
ITEM_TITLES = {"training": "Training", "finetune": "Fine-tuning",
               "inference_text": "Inference: text generation",
               "inference_image": "Inference: text-to-image",
               "communication": "Communication", "checkpoint": "Checkpoint"}


@dataclass(frozen=True)
class CommPoint:
    """One row of the template's communication table."""

    op: str
    devices: int
    elements: int
    element_bytes: int
    weight: float
    duration_ms: float
    throughput_gbit_per_s: float

    @property
    def message_bytes(self) -> int:
        return self.elements * self.element_bytes

    @property
    def key(self) -> str:
        return f"{self.op}@{self.devices}"


@dataclass(frozen=True)
class Settings:
    doc: dict[str, Any]
    path: Path

    @property
    def baseline_device(self) -> str:
        return str(self.doc["baseline_device"])

    @property
    def item_weights(self) -> dict[str, float]:
        return dict(self.doc["items"]["weights"])

    @property
    def subitem_weights(self) -> dict[str, float]:
        return dict(self.doc["training"]["subitem_weights"])

    def models(self, item: str) -> dict[str, dict[str, float]]:
        return dict(self.doc[item]["models"])

    @property
    def stability(self) -> dict[str, Any]:
        return dict(self.doc["training"]["stability"])

    @property
    def loss_tolerance(self) -> float:
        return float(self.doc["training"]["loss_tolerance"])

    @property
    def comm_points(self) -> list[CommPoint]:
        return [CommPoint(**p) for p in self.doc["communication"]["points"]]

    def section(self, name: str) -> dict[str, Any]:
        return dict(self.doc[name])


def _check_sums(doc: dict[str, Any], path: Path) -> None:
    for item in ("training", "finetune"):
        for key in ("alpha", "weight"):
            total = math.fsum(m[key] for m in doc[item]["models"].values())
            if not math.isclose(total, 1.0, abs_tol=1e-6):
                raise UserError(f"Scorecard settings {path}: {item}.models' {key} values sum "
                                f"to {total:g}.", f"Make the {key} of the models sum to 1.")
    sub = math.fsum(doc["training"]["subitem_weights"].values())
    ck = doc["checkpoint"]["save_weight"] + doc["checkpoint"]["load_weight"]
    st = doc["training"]["stability"]
    stab = st["crash_weight"] + st["hours_weight"] + st["variance_weight"]
    for name, total in (("training.subitem_weights", sub), ("checkpoint save + load", ck),
                        ("training.stability weights", stab)):
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise UserError(f"Scorecard settings {path}: {name} sum to {total:g}.",
                            "Make them sum to 1.")


def load_settings(path: Path | None = None) -> Settings:
    """The settings file, validated; a broken one is a UserError naming the field."""
    path = Path(path) if path else SETTINGS_FILE
    doc = read_yaml_file(path, "scorecard", "Scorecard settings")
    _check_sums(doc, path)
    return Settings(doc, path)
