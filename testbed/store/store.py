"""An open store: its schema kept current, documents read back verified.

``open_store(location)`` for writing creates the tables on first use and rebuilds the derived
ones from ``documents`` when this code's ``DERIVED_VERSION`` differs from the store's. Opening
read-only a store of another version upgrades it first (that one time needs a writer).
"""

from __future__ import annotations

import contextlib
import hashlib
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from bench.errors import UserError
from testbed.store import tables as t
from testbed.store.db import Location, connection, create_engine, locate


class StoreCorrupt(UserError):
    """A stored document whose bytes no longer hash to its address."""


def compress(data: bytes) -> bytes:
    """zlib at level 1: a third of level 6's time for bodies about 14 % larger (the 1,420
    files of 1,000 generated results: 21 % of their JSON instead of 19 %)."""
    return zlib.compress(data, 1)


def verified(doc_id: str, body: bytes) -> bytes:
    """The original bytes of a stored document, after checking they hash to ``doc_id``."""
    try:
        data = zlib.decompress(body)
    except zlib.error as exc:
        raise StoreCorrupt(f"Stored document {doc_id} cannot be decompressed ({exc}).",
                           "The store was changed by hand; add the original file again "
                           "after deleting that row.") from exc
    if hashlib.sha256(data).hexdigest() != doc_id:
        raise StoreCorrupt(f"Stored document {doc_id} no longer matches its sha256: it was "
                           "changed inside the store.",
                           "Add the original file again after deleting that row; never edit "
                           "documents in the database.")
    return data


@dataclass
class Store:
    location: Location
    engine: sa.Engine
    read_only: bool

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """A connection in a transaction (committed when the block ends without error)."""
        with connection(self.engine, self.location) as conn:
            yield conn

    def connect(self) -> contextlib.AbstractContextManager[sa.Connection]:
        """A connection for several transactions (``conn.begin()`` each)."""
        return connection(self.engine, self.location, begin=False)

    def document(self, doc_id: str) -> bytes:
        with self.begin() as conn:
            body = conn.execute(sa.select(t.documents.c.body)
                                .where(t.documents.c.doc_id == doc_id)).scalar()
        if body is None:
            raise UserError(f"No document {doc_id} in the store {self.location.shown}.",
                            "List what is stored with `invoke store list`.")
        return verified(doc_id, body)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_store(store: str | None, root: Path, read_only: bool = False) -> Store:
    """Open (and for writing, create or upgrade) the store ``--store`` names."""
    loc = locate(store, root)
    st = Store(loc, create_engine(loc, read_only), read_only)
    try:
        if read_only and not _is_current(st):
            # Written by another version: re-derive once (needs a writer), then read.
            open_store(store, root).close()
        elif not read_only:
            _ensure_schema(st)
    except BaseException:
        st.close()
        raise
    return st


def derived_version(conn: sa.Connection) -> str | None:
    if not sa.inspect(conn).has_table("store_meta"):
        return None
    return conn.execute(sa.select(t.store_meta.c.value)
                        .where(t.store_meta.c.key == "derived_version")).scalar()


def _is_current(st: Store) -> bool:
    with st.begin() as conn:
        version = derived_version(conn)
    if version is None:
        raise UserError(f"{st.location.shown} is not a results store (no store tables).",
                        "Add results first (`invoke store add results/`) or name the store "
                        "with --store.")
    return version == str(t.DERIVED_VERSION)


def _ensure_schema(st: Store) -> None:
    from testbed.store.ingest import rebuild

    with st.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Two processes opening a new shared store at once: one creates, the other waits.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(2024062401)"))
        t.metadata.create_all(conn, tables=[t.store_meta, t.documents])
        version = derived_version(conn)
        if version != str(t.DERIVED_VERSION):
            rebuild(conn)
