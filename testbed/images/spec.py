"""Vendor image specs: ``images/<vendor>/vendor.yaml``, validated by schemas/vendor.schema.json.

The spec is the one place for a vendor's image facts (base, SDK, PyTorch build, Python lock)
and its ``docker run`` passthrough; the build labels and run options are derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.schema import read_yaml_file
from bench.vendors import VENDORS, vendor_list

REPO_DIR = Path(__file__).resolve().parents[2]
SPEC_FILE = "vendor.yaml"


@dataclass(frozen=True)
class VendorSpec:
    """A validated vendor spec and where it lives (``directory`` = images/<vendor>)."""

    data: dict[str, Any]
    directory: Path

    @property
    def vendor(self) -> str:
        return self.data["vendor"]

    @property
    def base(self) -> dict[str, Any]:
        return self.data["base"]

    @property
    def python(self) -> dict[str, Any]:
        return self.data["python"]

    @property
    def run(self) -> dict[str, Any]:
        return self.data["run"]

    @property
    def user(self) -> dict[str, Any]:
        return self.data["user"]

    @property
    def dockerfile(self) -> Path:
        return self.directory / "Dockerfile"

    @property
    def lock_path(self) -> Path:
        return self.directory / self.python["lock"]

    @property
    def repository(self) -> str:
        """Image repository name; the tag is the build-input hash."""
        return f"accel-testbed/{self.vendor}"


def images_dir(root: Path = REPO_DIR) -> Path:
    return root / "images"


def unknown_vendor(vendor: str) -> UserError:
    return UserError(f"Unknown vendor {vendor!r}.",
                     f"Choose one of: {vendor_list()} (images/<vendor>/ holds each image).")


def load_spec(vendor: str, root: Path = REPO_DIR) -> VendorSpec:
    """Read and validate images/<vendor>/vendor.yaml; bad input is a UserError naming the file."""
    if vendor not in VENDORS:
        raise unknown_vendor(vendor)
    directory = images_dir(root) / vendor
    path = directory / SPEC_FILE
    if not path.exists():
        raise UserError(f"The vendor spec {path} is missing.",
                        f"Restore images/{vendor}/{SPEC_FILE} (see docs/containers.md).")
    data = read_yaml_file(path, "vendor", "Vendor spec")
    if data["vendor"] != vendor:
        raise UserError(f"{path}: $.vendor is {data['vendor']!r} but the directory is {vendor!r}.",
                        "Make them the same.")
    if not (directory / "Dockerfile").is_file():
        raise UserError(f"images/{vendor}/Dockerfile is missing.", "Restore it.")
    return VendorSpec(data, directory)
