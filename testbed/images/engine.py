"""The Docker engine, reached through the Docker SDK, with errors a user can act on."""

from __future__ import annotations

from typing import Any

from bench.errors import UserError


def connect() -> Any:
    """A ``docker.DockerClient`` for the engine in the environment (DOCKER_HOST or the socket)."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as exc:
        raise UserError("The Docker SDK (python package `docker`) is not installed.",
                        "Install the host extras: `bash scripts/setup.sh`.") from exc
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except DockerException as exc:
        raise UserError(f"The Docker engine is not reachable ({_short(exc)}).",
                        "Start it (`sudo systemctl start docker`, or `scripts/system-deps.sh` "
                        "as root) or point DOCKER_HOST at a running engine, then retry.") from exc
    return client


def engine_available() -> tuple[bool, str]:
    """Whether an engine answers (for tests and `invoke list`), and why not."""
    try:
        connect().close()
    except UserError as exc:
        return False, exc.what
    return True, "reachable"


def find_image(client: Any, ref: str) -> Any | None:
    from docker.errors import ImageNotFound

    try:
        return client.images.get(ref)
    except ImageNotFound:
        return None


def registry_digests(image: Any) -> list[str]:
    """The image's registry digests (``sha256:...``), once it was pushed or pulled."""
    return [d.split("@", 1)[1] for d in image.attrs.get("RepoDigests") or []
            if "@sha256:" in d]


def image_digest(image: Any) -> str:
    """The digest results record: the registry digest when the image was pushed or pulled,
    otherwise the local image ID (``sha256:`` of its config), which is what a machine with no
    registry has. Both match ``^sha256:[0-9a-f]{64}$``."""
    return next(iter(registry_digests(image)), image.id)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def engine_runtimes(client: Any) -> frozenset[str]:
    """The engine's container runtimes (``runc``, ``nvidia``, ``ascend``...)."""
    from docker.errors import DockerException

    try:
        return frozenset(client.info().get("Runtimes") or {})
    except DockerException:  # no answer: only the default runtime is assumed
        return frozenset()
