"""The cpu image's base, made on this machine: debootstrap a root file system, import it.

No container registry is reachable here, so ``FROM debian:bookworm`` cannot be pulled. The
recipe script (images/cpu/base/make-rootfs.sh) makes a minimal Debian root file system and
the Docker SDK imports it (as ``docker import`` does). The base is tagged with the hash of the
recipe (and the mirror it used), so a second build reuses it and a changed recipe makes a new
one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.errors import UserError
from testbed.images.engine import find_image
from testbed.images.spec import VendorSpec

MIRROR_ENV = "TESTBED_DEBIAN_MIRROR"
BASE_CHANGES = ["ENV LANG=C.UTF-8", 'CMD ["/bin/bash"]']


def recipe_sha256(recipe: Path, mirror: str | None) -> str:
    """Cache key of a local base: the recipe script's bytes and the mirror it reads from."""
    digest = hashlib.sha256(recipe.read_bytes())
    digest.update(b"\0mirror=" + (mirror or "").encode())
    digest.update(b"\0changes=" + "\n".join(BASE_CHANGES).encode())
    return digest.hexdigest()


def local_base_ref(spec: VendorSpec) -> str:
    recipe = spec.directory / spec.base["recipe"]
    return f"{spec.base['image']}:{recipe_sha256(recipe, os.environ.get(MIRROR_ENV))[:16]}"


def ensure_local_base(client: Any, spec: VendorSpec, log: Callable[[str], None] = print) -> Any:
    """The local base image for ``spec``, made from its recipe unless it already exists."""
    ref = local_base_ref(spec)
    image = find_image(client, ref)
    if image is not None:
        log(f"base {ref}: cached ({image.id[:19]})")
        return image
    recipe = spec.directory / spec.base["recipe"]
    if os.geteuid() != 0:
        raise UserError(f"The base {ref} does not exist and making it (debootstrap) needs root.",
                        f"Run `sudo {recipe} DIR` and `sudo tar -C DIR -c . | docker import - "
                        f"{ref}`, or run `invoke build --vendor {spec.vendor}` as root once.")
    if shutil.which("debootstrap") is None:
        raise UserError("debootstrap is not installed (needed to make the cpu base image).",
                        "Install it: `apt-get install debootstrap` (scripts/system-deps.sh).")
    log(f"base {ref}: making it with {recipe.name} (debootstrap, about a minute)")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="testbed-rootfs-") as tmp:
        rootfs, tarball = Path(tmp) / "rootfs", Path(tmp) / "rootfs.tar"
        _check(["sh", str(recipe), str(rootfs)], "The base recipe")
        _check(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tarball), "."],
               "Packing the base root file system")
        repository, tag = ref.rsplit(":", 1)
        client.api.import_image(src=str(tarball), repository=repository, tag=tag,
                                changes=BASE_CHANGES)
    image = client.images.get(ref)
    log(f"base {ref}: made in {time.monotonic() - start:.0f} s ({image.id[:19]})")
    return image


def _check(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n    ".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise UserError(f"{what} failed (exit {proc.returncode}):\n    {tail}\n",
                        "Check the Debian mirror is reachable (set TESTBED_DEBIAN_MIRROR to "
                        "another) and retry.")
