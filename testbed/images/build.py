"""``invoke build --vendor V``: build a vendor's image from its Dockerfile with the Docker SDK.

The image is tagged ``accel-testbed/<vendor>:<hash>`` where the hash covers every build input:
the Dockerfile, the vendor spec, the lock, the bench package, schemas and pyproject that are
copied in, the build arguments and the identity of the base image. A changed input can never
silently reuse an old image; unchanged inputs find the existing tag and skip the build. The
build context is assembled here (exactly the hashed files plus the wheelhouse the lock pins),
so what is hashed is what is sent. OCI labels carry the provenance.
"""

from __future__ import annotations

import hashlib
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import __version__
from bench.errors import UserError
from testbed.images.base import ensure_local_base, local_base_ref
from testbed.images.engine import find_image, image_digest
from testbed.images.lock import fill_wheelhouse, require_lock, sha256_file
from testbed.images.spec import REPO_DIR, VendorSpec

LABEL_PREFIX = "io.accel-testbed"
INPUTS_LABEL = f"{LABEL_PREFIX}.build-inputs-sha256"
TAG_HEX = 16
BASE_ARG = "BASE_IMAGE"
# What of the repository goes into every image (under /opt/testbed): the package that runs
# there and the data it reads.
PACKAGE_SOURCES = ("bench", "schemas", "pyproject.toml")
Log = Callable[[str], None]


@dataclass
class BuildResult:
    vendor: str
    tag: str
    digest: str
    image_id: str
    cached: bool
    seconds: float
    size_bytes: int
    labels: dict[str, str] = field(default_factory=dict)


def _wanted(path: Path) -> bool:
    return not any(p == "__pycache__" or p.startswith(".") for p in path.parts) \
        and path.suffix not in (".pyc", ".pyo")


def context_files(spec: VendorSpec, root: Path = REPO_DIR) -> list[tuple[str, Path]]:
    """(name in the build context, file) for every hashed input, sorted by name."""
    files = [("Dockerfile", spec.dockerfile), ("vendor.yaml", spec.directory / "vendor.yaml"),
             ("requirements.lock", require_lock(spec))]
    for name in PACKAGE_SOURCES:
        src = root / name
        if src.is_file():
            files.append((f"testbed/{name}", src))
            continue
        files += [(f"testbed/{p.relative_to(root).as_posix()}", p)
                  for p in src.rglob("*") if p.is_file() and _wanted(p.relative_to(root))]
    return sorted(files)


def build_inputs_sha256(file_hashes: Iterable[tuple[str, str]], build_args: dict[str, str],
                        base_id: str) -> str:
    """One hash over the (context name, sha256) of every file, the build arguments and the
    base image's identity. Order-independent in its inputs; any change to one changes it."""
    digest = hashlib.sha256()
    for name, file_hash in sorted(file_hashes):
        digest.update(f"file {name} {file_hash}\n".encode())
    for key, value in sorted(build_args.items()):
        digest.update(f"arg {key}={value}\n".encode())
    digest.update(f"base {base_id}\n".encode())
    return digest.hexdigest()


def image_tag(spec: VendorSpec, inputs_sha256: str) -> str:
    return f"{spec.repository}:{inputs_sha256[:TAG_HEX]}"


def git_revision(root: Path = REPO_DIR) -> tuple[str, bool | None]:
    """(commit, dirty) of the sources that go into the image; ("unknown", None) without git."""
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True,
                                capture_output=True, text=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--",
                                 *PACKAGE_SOURCES, "images"], check=True, capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown", None
    return commit, bool(status)


def base_reference(spec: VendorSpec, base: str | None) -> str | None:
    """The base reference the spec allows (None: the local base from its recipe), or a
    UserError saying what to give. Pure: checked before the engine is contacted."""
    source, default = spec.base["source"], spec.base["image"]
    if source == "local":
        return base
    if source == "public" and not base:
        digest = spec.base.get("digest")
        if not digest:
            raise UserError(
                f"images/{spec.vendor}/vendor.yaml: base.digest is not set, and the build "
                f"refuses an unpinned public base ({default}).",
                f"Pull it, read its digest (`docker pull {default} && docker inspect --format "
                f"'{{{{index .RepoDigests 0}}}}' {default}`), put it in base.digest, or pass "
                f"`invoke build --vendor {spec.vendor} --base {default}@sha256:<digest>`.")
        return f"{default}@{digest}"
    if source == "public" and "@sha256:" not in (base or ""):
        raise UserError(f"The base {base!r} is not pinned by digest.",
                        f"Give it as IMAGE@sha256:<digest> (e.g. {default}@sha256:...).")
    if source == "vendor" and not base:
        raise UserError(
            f"The {spec.vendor} image needs its vendor-distributed base image as a build "
            f"argument, and none was given.",
            f"Load the vendor's image (`docker load -i FILE` or log in to the vendor registry) "
            f"and run `invoke build --vendor {spec.vendor} --base IMAGE`; the published "
            f"evaluation used {default}.")
    return base


def resolve_base(client: Any, spec: VendorSpec, base: str | None, log: Log) -> tuple[str, Any]:
    """(reference, image) of the base the build uses, refusing what the spec does not allow."""
    ref = base_reference(spec, base)
    if ref is None:
        return local_base_ref(spec), ensure_local_base(client, spec, log)
    image = find_image(client, ref)
    if image is None:
        image = _pull(client, ref, spec)
    return ref, image


def _pull(client: Any, ref: str, spec: VendorSpec) -> Any:
    from docker.errors import DockerException

    try:
        return client.images.pull(ref)
    except DockerException as exc:
        raise UserError(
            f"The base image {ref} is not in the local engine and could not be pulled "
            f"({str(exc).splitlines()[0][:200]}).",
            "Load it (`docker load -i FILE`), or log in to its registry (`docker login`), "
            f"then rerun `invoke build --vendor {spec.vendor} --base {ref}`.") from exc


def write_context(tar_path: Path, files: list[tuple[str, Path]],
                  wheels: list[tuple[str, Path]]) -> None:
    """The build context as a tar with fixed owners and times, so Docker's layer cache sees
    only content changes."""
    with tarfile.open(tar_path, "w") as tar:
        for name, path in [*files, *wheels]:
            info = tar.gettarinfo(str(path), arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            info.mode = 0o755 if info.mode & 0o111 else 0o644
            with open(path, "rb") as fh:
                tar.addfile(info, fh)


def labels_for(spec: VendorSpec, inputs_sha256: str, base_ref: str, base_digest: str,
               root: Path = REPO_DIR) -> dict[str, str]:
    commit, dirty = git_revision(root)
    sdk = spec.data["sdk"]
    return {
        "org.opencontainers.image.title": f"accel-testbed-{spec.vendor}",
        "org.opencontainers.image.description": spec.data["description"],
        "org.opencontainers.image.version": __version__,
        "org.opencontainers.image.revision": commit,
        "org.opencontainers.image.created": datetime.now(tz=timezone.utc).isoformat(
            timespec="seconds"),
        "org.opencontainers.image.base.name": base_ref,
        "org.opencontainers.image.base.digest": base_digest,
        f"{LABEL_PREFIX}.vendor": spec.vendor,
        INPUTS_LABEL: inputs_sha256,
        f"{LABEL_PREFIX}.git-dirty": str(dirty).lower(),
        f"{LABEL_PREFIX}.torch": spec.data["pytorch"]["build"],
        f"{LABEL_PREFIX}.sdk": f"{sdk['name']} {sdk['version']}",
        f"{LABEL_PREFIX}.lock-sha256": sha256_file(spec.lock_path),
    }


@dataclass
class Plan:
    """Everything a build needs, computed before anything is sent to the engine."""

    spec: VendorSpec
    base_ref: str
    base_digest: str
    build_args: dict[str, str]
    files: list[tuple[str, Path]]
    inputs_sha256: str

    @property
    def tag(self) -> str:
        return image_tag(self.spec, self.inputs_sha256)


def plan_build(client: Any, spec: VendorSpec, base: str | None = None, root: Path = REPO_DIR,
               log: Log = print) -> Plan:
    base_ref, base_image = resolve_base(client, spec, base, log)
    base_digest = image_digest(base_image)
    build_args = {BASE_ARG: base_ref}
    files = context_files(spec, root)
    inputs = build_inputs_sha256(((n, sha256_file(p)) for n, p in files), build_args,
                                 base_digest)
    return Plan(spec, base_ref, base_digest, build_args, files, inputs)


def build_image(client: Any, spec: VendorSpec, base: str | None = None, root: Path = REPO_DIR,
                log: Log = print) -> BuildResult:
    """Build (or find, when the inputs are unchanged) the vendor's image; print the tag."""
    start = time.monotonic()
    plan = plan_build(client, spec, base, root, log)
    existing = find_image(client, plan.tag)
    if existing is not None and existing.labels.get(INPUTS_LABEL) == plan.inputs_sha256:
        log(f"build {spec.vendor}: inputs unchanged, using {plan.tag}")
        return _result(spec, plan.tag, existing, True, start)
    wheelhouse = fill_wheelhouse(spec, root, log)
    wheels = [(f"wheelhouse/{p.name}", p) for p in sorted(wheelhouse.glob("*.whl"))]
    labels = labels_for(spec, plan.inputs_sha256, plan.base_ref, plan.base_digest, root)
    log(f"build {spec.vendor}: {plan.tag} from {spec.dockerfile.relative_to(root)} "
        f"(base {plan.base_ref}, {len(plan.files)} files + {len(wheels)} wheels)")
    with tempfile.TemporaryDirectory(prefix="testbed-context-") as tmp:
        context = Path(tmp) / "context.tar"
        write_context(context, plan.files, wheels)
        with open(context, "rb") as fh:
            _stream_build(client, fh, plan, labels, log)
    image = client.images.get(plan.tag)
    return _result(spec, plan.tag, image, False, start)


def _stream_build(client: Any, fileobj: Any, plan: Plan, labels: dict[str, str],
                  log: Log) -> None:
    from docker.errors import APIError

    tail: list[str] = []
    try:
        for chunk in client.api.build(fileobj=fileobj, custom_context=True, tag=plan.tag,
                                      buildargs=plan.build_args, labels=labels, rm=True,
                                      forcerm=True, pull=False, decode=True,
                                      platform=plan.spec.data["platform"]):
            if "error" in chunk:
                raise UserError(
                    f"Building {plan.tag} failed: {chunk['error'].strip()}\n    "
                    + "\n    ".join(tail[-15:]) + "\n",
                    f"Fix images/{plan.spec.vendor}/Dockerfile or its inputs (output above).")
            for line in chunk.get("stream", "").splitlines():
                if line.strip():
                    tail.append(line)
                    log(f"  {line}")
    except APIError as exc:
        raise UserError(f"The Docker engine refused the build of {plan.tag}: {exc}.",
                        "Check the engine's log and the Dockerfile.") from exc


def _result(spec: VendorSpec, tag: str, image: Any, cached: bool, start: float) -> BuildResult:
    return BuildResult(spec.vendor, tag, image_digest(image), image.id, cached,
                       time.monotonic() - start, int(image.attrs.get("Size", 0)),
                       dict(image.labels))
