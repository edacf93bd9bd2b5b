"""Provenance for result documents (docs/measurement.md): what ran, where, from which sources."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

import psutil

from bench import __version__
from bench.devices.cpu import cpu_model_name
from bench.documents import DeviceInfo, GitState, HostInfo, ImageInfo, Provenance, Seeds, TorchInfo
from bench.paths import PACKAGE_DIR, REPO_DIR, schemas_dir

# Set by `invoke bench` (and baked into images as labels/env) so results name their image.
IMAGE_ENV = "TESTBED_IMAGE"
IMAGE_DIGEST_ENV = "TESTBED_IMAGE_DIGEST"
GIT_COMMIT_ENV = "TESTBED_GIT_COMMIT"


@functools.cache
def source_sha256() -> str:
    """Hash of the package's sources, suites and schemas (as LoadGen logs a hash of its own).

    Two results with the same hash ran the same benchmark code, whatever the git state says.
    """
    return tree_sha256(REPO_DIR, PACKAGE_DIR, schemas_dir())


def tree_sha256(root: Path, package_dir: Path, schemas: Path) -> str:
    """``source_sha256`` of any copy of the sources laid out like the repository (``root``
    holding ``bench/`` and ``schemas/``): the audit hashes the files it copies out of an image
    with this, so the code in the image is checked without running anything in it."""
    digest = hashlib.sha256()
    files = sorted([*package_dir.rglob("*.py"), *package_dir.rglob("*.yaml"),
                    *package_dir.rglob("*.json"), *schemas.glob("*.json")])
    for path in files:
        if "__pycache__" in path.parts:
            continue
        digest.update(str(path.relative_to(root) if path.is_relative_to(root)
                          else path.name).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


@functools.cache
def git_state() -> GitState:
    commit = os.environ.get(GIT_COMMIT_ENV)
    if commit:
        return {"commit": commit, "dirty": None, "source": f"${GIT_COMMIT_ENV}"}
    try:
        commit = subprocess.run(["git", "-C", str(REPO_DIR), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=10, check=True
                                ).stdout.strip()
        dirty = bool(subprocess.run(
            ["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", "bench", "schemas"],
            capture_output=True, text=True, timeout=10, check=True).stdout.strip())
        return {"commit": commit, "dirty": dirty, "source": "git"}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None, "source": "unknown (no git, no $TESTBED_GIT_COMMIT)"}


def host_info() -> HostInfo:
    uname = platform.uname()
    return {
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model_name(),
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_bytes": psutil.virtual_memory().total,
        "os": _os_release() or f"{uname.system} {uname.release}",
        "kernel": uname.release,
        "machine": uname.machine,
        "python": sys.version.split()[0],
    }


def _os_release() -> str | None:
    try:
        with open("/etc/os-release", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return None


def torch_info() -> TorchInfo:
    import torch

    return {
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "hip": getattr(torch.version, "hip", None),
        "git_version": getattr(torch.version, "git_version", None),
        "debug": bool(getattr(torch.version, "debug", False)),
        "threads": torch.get_num_threads(),
    }


def image_info() -> ImageInfo:
    tag = os.environ.get(IMAGE_ENV)
    return {"tag": tag, "digest": os.environ.get(IMAGE_DIGEST_ENV), "native": tag is None}


def provenance(vendor: str, device: DeviceInfo | None, seeds: Seeds,
               argv: list[str], label: str | None = None) -> Provenance:
    """``label`` (``bench run --label NAME``) names a run configuration the provenance cannot
    tell apart (a power cap, a BIOS setting), so the report shows it as its own device."""
    return {
        **({"label": label} if label else {}),
        "bench_version": __version__,
        "git": git_state(),
        "source_sha256": source_sha256(),
        "image": image_info(),
        "vendor": vendor,
        "device": device,
        "torch": torch_info(),
        "host": host_info(),
        "seeds": seeds,
        "command": argv,
    }
