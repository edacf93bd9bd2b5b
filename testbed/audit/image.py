"""The image a submission names: found by digest, its labels, and the code inside it.

The code check copies ``bench/`` and ``schemas/`` out of the image (nothing runs in it) and
hashes them as the bench hashes itself (``source_sha256``): equal hashes mean the image holds
the code that wrote the results, whatever its labels say.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from bench.documents import ImageInfo
from bench.errors import UserError
from bench.provenance import source_sha256, tree_sha256
from testbed.audit.checks import IMAGE, Check, failed, passed, skipped
from testbed.audit.submission import Submission
from testbed.images.build import LABEL_PREFIX
from testbed.images.engine import find_image, image_digest, registry_digests


@dataclass
class ImageChoice:
    """The image the re-run uses (None when the checks say it must not run)."""

    ref: str | None
    digest: str | None
    labels: dict[str, str]


def digests_of(image: Any) -> set[str]:
    """Every digest that names ``image``: its ID, and its registry digests once pushed or
    pulled (a result records whichever the engine had when it ran)."""
    return {image.id, *registry_digests(image)}


def find_by_digest(client: Any, digest: str) -> Any | None:
    """The local image whose ID or registry digest is ``digest``."""
    found = find_image(client, digest)
    if found is not None:
        return found
    for image in client.images.list():
        if digest in registry_digests(image):
            return image
    return None


def require_image(sub: Submission) -> ImageInfo:
    """The image the results name; results measured natively name none."""
    recorded = sub.provenance.get("image") or {}
    if recorded.get("native") or not recorded.get("digest"):
        raise UserError(f"The results in {sub.run_dir} were measured natively (they name no "
                        "image), so there is no image to re-run them from.",
                        "Audit them with --native on a machine like the one that measured "
                        "them (the audit then checks the bench sources instead).")
    return recorded


def image_checks(client: Any, sub: Submission,
                 image_ref: str | None) -> tuple[list[Check], ImageChoice]:
    """Is the image the results name here, is it that image, and does it hold that code?"""
    recorded = require_image(sub)
    digest, tag = recorded["digest"], recorded.get("tag")
    subject = tag or digest
    checks: list[Check] = []
    if image_ref:
        image = find_image(client, image_ref)
        if image is None:
            raise UserError(f"No image {image_ref} in the local Docker engine.",
                            "Load it (`docker load -i FILE`) or pull it, then retry.")
        subject = image_ref
        actual = image_digest(image)
        if digest not in digests_of(image):
            checks.append(failed("image_digest", IMAGE, image_ref,
                                 f"{image_ref} is {actual}, the results were measured in "
                                 f"{digest} ({tag}): a different image"))
            return checks, ImageChoice(None, actual, dict(image.labels or {}))
    else:
        image = find_by_digest(client, digest)
        if image is None:
            checks.append(failed("image_digest", IMAGE, subject,
                                 f"no image with digest {digest} in the local Docker engine: "
                                 f"load the submitted image (`docker load -i FILE`) or name "
                                 "it with --image"))
            return checks, ImageChoice(None, None, {})
    checks.append(passed("image_digest", IMAGE, subject,
                         f"the image is {digest}, the one the results name"))
    labels = dict(image.labels or {})
    prov = sub.provenance
    expected = {"org.opencontainers.image.version": prov.get("bench_version"),
                "org.opencontainers.image.revision": (prov.get("git") or {}).get("commit"),
                f"{LABEL_PREFIX}.vendor": prov.get("vendor")}
    for label, want in expected.items():
        have = labels.get(label)
        if have == want:
            checks.append(passed("image_label", IMAGE, label, f"{label} = {have}"))
        else:
            checks.append(failed("image_label", IMAGE, label,
                                 f"the image's {label} is {have!r}, the results say {want!r}"))
    checks.append(image_config_check(image))
    checks.append(image_code_check(client, image, prov.get("source_sha256")))
    # The re-run names the image by its ID: a tag may have moved since, a registry digest
    # is not something `docker run` takes alone.
    return checks, ImageChoice(image.id, digest, labels)


# What `invoke build` gives every image (images/*/Dockerfile): anything else in the config
# could run other code than the sources the image_code check hashes.
ENTRYPOINT = ["python", "-m", "bench"]
RISKY_ENV = ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME", "PYTHONUSERBASE", "LD_PRELOAD",
             "LD_LIBRARY_PATH_PRELOAD", "PYTHONINSPECT")


def image_config_check(image: Any) -> Check:
    config = image.attrs.get("Config") or {}
    problems = []
    if (config.get("Entrypoint") or []) != ENTRYPOINT:
        problems.append(f"entrypoint {config.get('Entrypoint')!r}, not {ENTRYPOINT!r}")
    env = dict(item.split("=", 1) for item in config.get("Env") or [] if "=" in item)
    risky = sorted(k for k in env if k in RISKY_ENV)
    if risky:
        problems.append(f"environment sets {', '.join(risky)}, which can load other code")
    if problems:
        return failed("image_config", IMAGE, image.id,
                      "the image does not start the bench as `invoke build` makes it: "
                      + "; ".join(problems))
    return passed("image_config", IMAGE, image.id,
                  f"entrypoint {' '.join(ENTRYPOINT)}, no environment that loads other code")


def image_code_check(client: Any, image: Any, expected: str | None) -> Check:
    workdir = (image.attrs.get("Config") or {}).get("WorkingDir") or "/opt/testbed"
    try:
        actual = image_sources_sha256(client, image.id, workdir)
    except Exception as exc:  # any engine or archive problem fails the check
        return failed("image_code", IMAGE, workdir,
                      f"could not copy the bench sources out of the image: {exc}")
    if actual != expected:
        return failed("image_code", IMAGE, workdir,
                      f"the bench sources in the image hash to {actual}, the results were "
                      f"written by sources hashing to {expected}")
    return passed("image_code", IMAGE, workdir,
                  "the bench sources in the image are the ones that wrote the results")


def image_sources_sha256(client: Any, image_id: str, workdir: str) -> str:
    """``source_sha256`` of the bench package and schemas inside an image, computed here."""
    container = client.containers.create(image_id, command=["list"])
    try:
        with tempfile.TemporaryDirectory(prefix="audit-image-") as tmp:
            root = Path(tmp)
            for part in ("bench", "schemas"):
                stream, _ = container.get_archive(str(PurePosixPath(workdir) / part))
                with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                    _extract(tar, root)
            foreign = sorted(str(p.relative_to(root)) for p in (root / "bench").rglob("*")
                             if p.is_file() and not _source_like(p))
            if foreign:
                raise ValueError(f"bench/ holds files that are not sources: "
                                 f"{', '.join(foreign[:5])} (compiled modules or path hooks "
                                 "would run instead of the hashed sources)")
            return tree_sha256(root, root / "bench", root / "schemas")
    finally:
        container.remove(force=True)


# What bench/ may hold: the hashed sources, and the bytecode `python -m compileall` writes
# into __pycache__ (used only while it matches its source's size and time stamp). A compiled
# extension (.so) or a .pth would be imported instead of, or besides, the sources.
SOURCE_SUFFIXES = {".py", ".yaml", ".json"}


def _source_like(path: Path) -> bool:
    return path.suffix in SOURCE_SUFFIXES or (
        path.suffix == ".pyc" and path.parent.name == "__pycache__")


def _extract(tar: tarfile.TarFile, root: Path) -> None:
    if hasattr(tarfile, "data_filter"):  # Python 3.10.12+ / 3.11.4+
        tar.extractall(root, filter="data")
        return
    for member in tar.getmembers():  # older: refuse links and paths outside root
        target = (root / member.name).resolve()
        if member.issym() or member.islnk() or not target.is_relative_to(root.resolve()):
            raise ValueError(f"unsafe archive member {member.name}")
        tar.extract(member, root)


def native_checks(sub: Submission) -> list[Check]:
    """--native: no image; the bench in this checkout must be the one that wrote the results."""
    prov = sub.provenance
    image = prov.get("image") or {}
    out = [skipped("image_digest", IMAGE, image.get("tag") or "(native)",
                   "--native: the re-run uses this Python environment, not an image"
                   + (f" (the results were measured in {image.get('digest')})"
                      if image.get("digest") else ""))]
    mine, theirs = source_sha256(), prov.get("source_sha256")
    if mine == theirs:
        out.append(passed("bench_sources", IMAGE, "bench/, schemas/",
                          "this checkout's bench sources are the ones that wrote the results"))
    else:
        commit = (prov.get("git") or {}).get("commit")
        out.append(failed("bench_sources", IMAGE, "bench/, schemas/",
                          f"this checkout's bench sources hash to {mine}, the results were "
                          f"written by {theirs} (git commit {commit}): check out that commit "
                          "to re-run the same code"))
    return out
