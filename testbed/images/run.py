"""The body of ``invoke build``, a thin shell over spec and build (tasks.py only translates
errors to exit codes). Running a suite in an image is the container launcher's
(``testbed/launch/container.py``)."""

from __future__ import annotations

from pathlib import Path

from testbed.images.build import base_reference, build_image
from testbed.images.engine import connect
from testbed.images.spec import REPO_DIR, load_spec


def build_vendor(vendor: str, base: str | None = None, root: Path = REPO_DIR) -> None:
    spec = load_spec(vendor, root)
    base_reference(spec, base)  # a missing or unpinned base is refused before anything else
    client = connect()
    result = build_image(client, spec, base, root)
    state = "cached (inputs unchanged)" if result.cached else "built"
    print(f"image:  {result.tag}  ({state} in {result.seconds:.1f} s, "
          f"{result.size_bytes / 1e6:.0f} MB)")
    print(f"digest: {result.digest}")
