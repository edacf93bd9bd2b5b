"""JSON files written atomically, read defensively, and the canonical hash that seals a
result document.

Reading: the files the report, ``validate`` and the audit read were written by someone else.
``read_json_file`` opens only a regular file (a FIFO would block forever, ``/dev/zero`` never
ends), inside the directory it was found in when one is given (a symlink out of a run
directory is refused, not followed), up to ``max_document_bytes()``; it refuses what Python's
``json`` would accept but no JSON document holds (NaN, Infinity, 1e999) and what would crash
the code after it (nesting deeper than ``MAX_DEPTH``, integers longer than
``MAX_INT_DIGITS``). Every refusal is an ``UnreadableDocument`` with a rule and a short reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

HASH_FIELD = "sha256"
MAX_DOCUMENT_BYTES_ENV = "BENCH_MAX_DOCUMENT_BYTES"
# The longest real result (a 30-minute repeat sampled at 10 Hz, three repeats) is a few MB.
DEFAULT_MAX_DOCUMENT_BYTES = 64 * 2**20
MAX_DEPTH = 64  # levels of nesting (``[]`` is one, ``[[]]`` two); a result nests about 8
MAX_NODES = 2_000_000  # values in one document (YAML aliases can multiply them)
MAX_INT_DIGITS = 40  # byte counts and FLOP counts have at most 20 digits

# a document that seal() returns with its own type (a ResultDoc stays a ResultDoc)
DocT = TypeVar("DocT", bound="Mapping[str, Any]")  # a string: Python 3.8 (jetson)


def canonical_bytes(doc: Mapping[str, Any]) -> bytes:
    """Canonical JSON of ``doc`` without its hash field: sorted keys, no whitespace, UTF-8."""
    body = {k: v for k, v in doc.items() if k != HASH_FIELD}
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def body_sha256(doc: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(doc)).hexdigest()


def seal(doc: DocT) -> DocT:
    """Return ``doc`` with its ``sha256`` set over the canonical body."""
    sealed = dict(doc)
    sealed[HASH_FIELD] = body_sha256(doc)
    return sealed  # type: ignore[return-value]  # doc's own keys and its seal: doc's type


def finite_or_none(value: Any) -> Any:
    """JSON has no NaN or infinity: such values become null (callers record why)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True,
                       mkdir: bool = False) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one,
    with the mode any new file gets (the umask's; mkstemp alone would make it 0600).

    The temporary file lives in the same directory (same file system) and is removed if
    anything fails, so no partial file is ever left behind. ``durable``: the file and its
    directory entry are on the disk when this returns (results, manifests, exported
    documents; not a site's pages, which are rewritten whole); ``mkdir``: the missing parent
    directories are made first.
    """
    path = Path(path)
    if mkdir:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        with contextlib.suppress(OSError):
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


def atomic_write_text(path: Path, text: str) -> None:
    """``text`` (UTF-8) into ``path``, atomically and durably (``atomic_write_bytes``)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, doc: Any) -> None:
    atomic_write_text(path, json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_json(path: Path) -> Any:
    """A JSON file the bench wrote itself (a child's result, a spec): trusted, read as is."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


class UnreadableDocument(ValueError):
    """A file that is not a document we read: ``rule`` names the check, the text says why."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule


def max_document_bytes() -> int:
    """The size limit of one document: ``$BENCH_MAX_DOCUMENT_BYTES`` or 64 MiB."""
    raw = os.environ.get(MAX_DOCUMENT_BYTES_ENV, "")
    try:
        value = int(raw) if raw else DEFAULT_MAX_DOCUMENT_BYTES
    except ValueError:
        value = -1
    if value <= 0:
        from bench.errors import UserError

        raise UserError(f"${MAX_DOCUMENT_BYTES_ENV}={raw!r} is not a positive number of bytes.",
                        f"Unset it (default {DEFAULT_MAX_DOCUMENT_BYTES}) or give e.g. "
                        f"{MAX_DOCUMENT_BYTES_ENV}=268435456.")
    return value


_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
               (stat.S_ISSOCK, "a socket"))


def read_document_bytes(path: Path, root: Path | None = None, limit: int | None = None) -> bytes:
    """The bytes of a regular file no larger than ``limit``, inside ``root`` if given."""
    path = Path(path)
    limit = max_document_bytes() if limit is None else limit
    if root is not None:
        real, base = path.resolve(), Path(root).resolve()
        if not real.is_relative_to(base):
            raise UnreadableDocument("inside", f"leads out of {root} (a symlink to a file "
                                     "elsewhere): only files inside the directory are read")
    try:
        # O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UnreadableDocument("readable", f"cannot be read: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = next((k for test, k in _FILE_KINDS if test(info.st_mode)), "not a file")
            raise UnreadableDocument("regular_file", f"is {kind}, not a regular file")
        if info.st_size > limit:
            raise UnreadableDocument("size", f"is {info.st_size} bytes, over the limit of "
                                     f"{limit} (${MAX_DOCUMENT_BYTES_ENV})")
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise UnreadableDocument("readable", f"cannot be read: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if total > limit:
        raise UnreadableDocument("size", f"is over the limit of {limit} bytes "
                                 f"(${MAX_DOCUMENT_BYTES_ENV})")
    return b"".join(chunks)


def _refuse_constant(name: str) -> Any:
    raise UnreadableDocument("json", f"holds {name}, which is not JSON (a number must be finite)")


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise UnreadableDocument("json", f"holds an integer of {len(text.lstrip('-'))} digits "
                                 f"(at most {MAX_INT_DIGITS} are read)")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnreadableDocument("json", f"holds the number {text[:40]}, which is out of range")
    return value


def parse_json_document(data: bytes) -> Any:
    """Parse JSON text, refusing what ``json`` accepts but a document must not hold."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableDocument("json", f"is not UTF-8 text ({exc.reason} at byte "
                                 f"{exc.start})") from exc
    # First with floats parsed by json's own C code (the values ``_parse_float`` gives): a
    # document with nothing to refuse is then read without a Python call per number. Anything
    # else (NaN, a number out of range, read as an infinity; any error) is read again as
    # below, which says what it refuses.
    with contextlib.suppress(ValueError, RecursionError):
        doc = json.loads(text, parse_int=_parse_int)
        if _plainly_within(doc, MAX_DEPTH, MAX_NODES):
            return doc
    try:
        doc = json.loads(text, parse_constant=_refuse_constant, parse_int=_parse_int,
                         parse_float=_parse_float)
    except RecursionError as exc:
        raise UnreadableDocument("depth", f"nests deeper than {MAX_DEPTH} levels") from exc
    except json.JSONDecodeError as exc:
        raise UnreadableDocument("json", f"is not JSON: {exc}") from exc
    check_tree(doc)
    return doc


def json_path(parts: Any) -> str:
    """``$.a[0].b`` for the keys and indices ``parts``."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


_SCALARS = frozenset({str, int, bool, type(None)})
_CONTAINERS = frozenset({dict, list, tuple})


def _plainly_within(doc: Any, max_depth: int, max_nodes: int) -> bool:
    """True when ``check_tree`` has nothing to refuse, found without a Python step per value
    (a document's hundred thousand telemetry samples): level by level over the containers,
    each one's values looked at by their types, its floats by their sum (finite only when
    every one is). False when anything is out of bounds or not plainly within them (a type
    other than JSON's): ``check_tree`` then looks value by value and says what."""
    if type(doc) not in _CONTAINERS:
        return type(doc) in _SCALARS or (type(doc) is float and math.isfinite(doc))
    level, depth, nodes = [doc], 0, 1  # depth: the levels above ``level``'s containers
    while level:
        if depth >= max_depth:
            return False
        below = []
        for container in level:
            values = list(container.values()) if type(container) is dict else container
            nodes += len(values)
            if nodes > max_nodes:
                return False
            kinds = set(map(type, values))
            if kinds <= _SCALARS:
                continue
            if float in kinds and not math.isfinite(
                    sum(values if len(kinds) == 1 else [v for v in values if type(v) is float])):
                return False
            if kinds & _CONTAINERS:
                below += [v for v in values if type(v) in _CONTAINERS]
            if not kinds <= _SCALARS | _CONTAINERS | {float}:
                return False
        level, depth = below, depth + 1
    return True


def check_tree(doc: Any, max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> None:
    """Refuse a parsed document that nests too deeply (more than ``max_depth`` levels of
    objects and arrays: ``[]`` is one level, ``[[]]`` two), holds more than ``max_nodes``
    values (every object, array and scalar counts; YAML aliases can repeat a subtree a
    billion times) or a number that is not finite (YAML's .inf, .nan). Iterative, so the
    check itself never runs out of stack."""
    if _plainly_within(doc, max_depth, max_nodes):
        return
    stack: list[tuple[Any, tuple[Any, ...]]] = [(doc, ())]
    nodes = 0
    while stack:
        value, where = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            raise UnreadableDocument("size", f"holds more than {max_nodes} values")
        container = isinstance(value, dict | list | tuple)
        if container and len(where) >= max_depth:  # this container is level len(where) + 1
            raise UnreadableDocument("depth", f"nests deeper than {max_depth} levels")
        if isinstance(value, dict):
            stack.extend((v, (*where, k)) for k, v in value.items())
        elif isinstance(value, list | tuple):
            stack.extend((v, (*where, i)) for i, v in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            raise UnreadableDocument("finite", f"at {json_path(where)}: {value} is not a "
                                     "finite number")


def read_json_file(path: Path, root: Path | None = None, limit: int | None = None) -> Any:
    """A JSON document someone else wrote, read defensively (see the module's docstring)."""
    return parse_json_document(read_document_bytes(path, root, limit))


def sanitize(value: Any) -> Any:
    """Recursively replace NaN and infinities (e.g. a diverged loss) by null."""
    if isinstance(value, dict):
        return {k: sanitize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [sanitize(v) for v in value]
    return finite_or_none(value)
