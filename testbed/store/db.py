"""Where the store is and how to open it: a DuckDB file (default) or a PostgreSQL server.

One data-access layer (SQLAlchemy Core) serves both: ``duckdb_engine`` for the embedded file
beside ``results/``, ``psycopg`` for a lab's shared server. ``--store`` takes a path or a
``postgresql://`` URL; without it, ``$TESTBED_STORE``, else ``store.duckdb`` in the checkout.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from bench.errors import UserError

ENV = "TESTBED_STORE"
DEFAULT_FILE = "store.duckdb"
LOCK_WAIT_S = 15.0  # a DuckDB file is one writer at a time: wait this long for another process


@dataclass(frozen=True)
class Location:
    """A store's address: the SQLAlchemy URL and how to name it to a user."""

    url: str
    shown: str
    path: Path | None = None  # the DuckDB file; None for a server

    @property
    def is_duckdb(self) -> bool:
        return self.path is not None


def locate(store: str | None, root: Path) -> Location:
    """The store named by ``--store``, ``$TESTBED_STORE`` or the default file under ``root``."""
    text = store or os.environ.get(ENV) or str(root / DEFAULT_FILE)
    if "://" in text:
        try:
            url = sa.engine.make_url(text)
            if url.port is not None and not 0 < url.port < 65536:
                raise ValueError(f"port {url.port} is not a TCP port")
        except (sa.exc.ArgumentError, ValueError) as exc:
            shown = re.sub(r"://([^:@/]*):[^@/]*@", r"://\1:***@", text)  # no password
            raise UserError(f"--store {shown!r} is not a database URL: {exc}.",
                            "Give a file path (a DuckDB store) or "
                            "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE.") from exc
        backend = url.get_backend_name()
        shown = url.render_as_string(hide_password=True)
        if backend in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        elif backend == "duckdb":
            path = Path(url.database or "").expanduser().resolve()
            return Location(f"duckdb:///{path}", str(path), path)
        else:
            raise UserError(f"--store {url.render_as_string(hide_password=True)}: "
                            f"{backend} is not supported.",
                            "Use a file path (DuckDB) or a postgresql:// URL.")
        return Location(url.render_as_string(hide_password=False), shown)
    path = Path(text).expanduser().resolve()
    if path.is_dir():
        raise UserError(f"The store {path} is a directory.",
                        f"Name a file, e.g. {path / DEFAULT_FILE}.")
    return Location(f"duckdb:///{path}", str(path), path)


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc)
    return "lock" in text.lower() and ("Conflicting" in text or "Could not set" in text)


def create_engine(loc: Location, read_only: bool) -> sa.Engine:
    if loc.is_duckdb:
        assert loc.path is not None
        if read_only and not loc.path.exists():
            raise UserError(f"There is no store at {loc.shown} yet.",
                            "Add results first: `invoke store add results/` (or run "
                            "`invoke bench`, which adds its run), or name another with "
                            "--store.")
        if not read_only:
            try:
                loc.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"Cannot create the directory of the store {loc.shown}: "
                                f"{exc.strerror or exc}.", "Name another with --store.") from exc
        config = {"enable_external_access": False} if read_only else {}
        # NullPool: a DuckDB file is locked while a connection is open, so none is kept.
        engine = sa.create_engine(loc.url, poolclass=NullPool,
                                  connect_args={"read_only": read_only, "config": config})
        sa.event.listen(engine, "connect", _quiet_duckdb)
        return engine
    return sa.create_engine(loc.url, poolclass=NullPool,
                            connect_args={"connect_timeout": 10,
                                          "application_name": "accel-testbed store"})


def _quiet_duckdb(dbapi_conn: object, record: object) -> None:
    """DuckDB draws a progress bar on stdout for long queries: not in our commands' output."""
    cur = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cur.execute("SET enable_progress_bar = false")
    cur.close()


@contextmanager
def connection(engine: sa.Engine, loc: Location, begin: bool = True
               ) -> Iterator[sa.Connection]:
    """A connection (in a transaction when ``begin``), with errors a user can act on."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            conn = engine.connect()
            break
        except sa.exc.DBAPIError as exc:
            if loc.is_duckdb and _is_lock_error(exc.orig) and time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            raise unreachable(loc, exc) from exc
    try:
        if begin:
            with conn.begin():
                yield conn
        else:
            yield conn
    finally:
        conn.close()


def unreachable(loc: Location, exc: sa.exc.DBAPIError) -> UserError:
    first = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    if loc.is_duckdb:
        if _is_lock_error(exc.orig):
            return UserError(f"The store {loc.shown} is in use by another process ({first}).",
                             "Wait for it to finish (a DuckDB store has one writer at a time; "
                             "a lab sharing results uses a PostgreSQL store).")
        return UserError(f"Cannot open the store {loc.shown}: {first}.",
                         "Name a DuckDB store file or a postgresql:// URL with --store.")
    return UserError(f"Cannot connect to the store {loc.shown}: {first}.",
                     "Check that the server runs and the URL (user, password, host, port, "
                     "database) is right.")
