"""The run directory: claimed by exactly one run, with room kept for its last manifest.

Two ``python -m bench run --out X`` started at the same moment must not both write into X:
the first to create ``.bench-run`` with ``O_EXCL`` (atomic on every local and network file
system Linux supports) owns the directory, the other gets the usual refusal. The claim stays
after the run: a directory holds one run.

A disk that fills during a run must not leave a manifest that lies (``running``, a result on
disk missing from it). A run therefore writes ``.bench-reserve`` (``RESERVE_BYTES``) when it
claims its directory and deletes it only to make room for the manifest that says how the run
ended. A disk already full at the start is refused there, before anything runs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import uuid
from pathlib import Path

from bench.errors import UserError
from bench.ids import MANIFEST_FILE

CLAIM_FILE = ".bench-run"
RESERVE_FILE = ".bench-reserve"
# Room for the final manifest and its temporary copy: a manifest is about 300 bytes per entry
# plus a few kB, so 1 MiB covers suites of more than a thousand entries.
RESERVE_BYTES = 1 << 20
# Errors of the storage itself, after which the run cannot record anything more.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG})


class StorageError(Exception):
    """A write into the run directory failed (disk full, read-only, I/O error)."""

    def __init__(self, what: str, exc: OSError) -> None:
        super().__init__(f"{what}: {exc.strerror or exc}")
        self.what = what
        self.oserror = exc


USED_FIX = ("Give each run its own directory: leave out --out (results/<run-id>/) or name a "
            "new or empty one.")


def refuse_used_out_dir(out: Path) -> None:
    """A run directory holds one run: results of another would be mixed into its report."""
    if not out.is_dir():
        return
    earlier = sorted(p.name for p in out.glob("*.json"))
    if earlier:
        raise UserError(
            f"Output directory {out} already holds results ({', '.join(earlier[:3])}"
            + (", ..." if len(earlier) > 3 else "") + ").", USED_FIX)
    if (out / CLAIM_FILE).exists():
        raise _claimed(out)


def _claimed(out: Path) -> UserError:
    try:
        with open(out / CLAIM_FILE, encoding="utf-8", errors="replace") as fh:
            owner = fh.read(200).strip() or "(unnamed)"
    except OSError:
        owner = "(unreadable)"
    return UserError(f"Output directory {out} already belongs to run {owner} ({CLAIM_FILE} "
                     "in it).", USED_FIX)


def claim_out_dir(out: Path, run_id: str) -> Path:
    """Create ``out`` if needed, claim it for ``run_id`` and reserve room for the last
    manifest; every failure is a ``UserError`` and leaves nothing behind."""
    refuse_used_out_dir(out)
    # The claim is written whole under a private name, then linked to its public one: the
    # link is the atomic step (it fails if the name exists), so whoever reads a claim reads
    # its owner, never an empty file between a create and a write.
    private = out / f"{CLAIM_FILE}.{uuid.uuid4().hex}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, f"{run_id} (pid {os.getpid()})\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(private, out / CLAIM_FILE)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            # a file system without hard links: claim by exclusive create instead
            os.close(os.open(out / CLAIM_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            os.replace(private, out / CLAIM_FILE)
    except FileExistsError:
        raise _claimed(out) from None  # another run claimed it a moment ago
    except OSError as exc:
        raise _not_writable(out, exc) from exc
    finally:
        with contextlib.suppress(OSError):
            private.unlink()
    try:
        _write_reserve(out / RESERVE_FILE)
    except OSError as exc:
        for name in (RESERVE_FILE, CLAIM_FILE):
            with contextlib.suppress(OSError):
                (out / name).unlink()
        raise _not_writable(out, exc) from exc
    return out


def _not_writable(out: Path, exc: OSError) -> UserError:
    if exc.errno in STORAGE_ERRNOS and exc.errno != errno.EROFS:
        return UserError(f"No room to run in {out}: {exc.strerror or exc} (a run keeps "
                         f"{RESERVE_BYTES // 1024} KiB free for its last manifest).",
                         "Free some space on that file system, or choose another with "
                         "--out DIR.")
    return UserError(f"Output directory {out} is not writable: {exc.strerror or exc}.",
                     "Choose a directory you can write to with `--out DIR`, or fix its "
                     "permissions.")


def _write_reserve(path: Path) -> None:
    block = b"\0" * 65536
    with open(path, "wb") as fh:
        for _ in range(RESERVE_BYTES // len(block)):
            fh.write(block)
        fh.flush()
        os.fsync(fh.fileno())


def release_reserve(out: Path) -> None:
    """Give the reserved room back (to write the last manifest, or at the end of the run)."""
    with contextlib.suppress(OSError):
        (out / RESERVE_FILE).unlink()


def what_is_on_disk(out: Path) -> list[str]:
    """The result files in ``out`` (for a message when even the last manifest failed)."""
    try:
        return sorted(p.name for p in out.glob("*.json") if p.name != MANIFEST_FILE)
    except OSError:
        return []


def prepare_out_dir(out: Path) -> Path:
    """A directory a launcher fills from elsewhere (a Slurm run's gathered results): new or
    empty, created, and proved writable before anything is submitted (nothing left on
    failure). A bench run claims its own directory with ``claim_out_dir``."""
    refuse_used_out_dir(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise _not_writable(out, exc) from exc
    return out
