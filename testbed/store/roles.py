"""Least privilege on a PostgreSQL store: the role ``invoke store query`` runs as.

A READ ONLY transaction stops ``INSERT`` and ``DROP``, not a superuser: ``COPY (...) TO
PROGRAM`` runs a command on the server and ``pg_read_file`` reads any file the server can. So
the user's SQL runs only under a role that can read the store's tables and nothing else:
``create_reader`` makes one (``invoke store reader NAME``, with the writer's URL), and
``powers`` lists what a connection's role can do beyond reading, which ``read_only_query``
refuses before it runs anything.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from bench.errors import UserError
from testbed.store import tables as t
from testbed.store.store import Store

ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
META_KEY = "query_role"
# Built-in roles whose members read or write the server's files or run its programs.
SERVER_ROLES = ("pg_execute_server_program", "pg_read_server_files", "pg_write_server_files",
                "pg_write_all_data")
# Functions that reach outside the database (revoked from PUBLIC; a grant gives them back).
SERVER_FUNCTIONS = ("pg_read_file(text)", "pg_read_binary_file(text)", "pg_ls_dir(text)",
                    "lo_import(text)", "lo_export(oid, text)")
WRITES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")


def powers(cursor: Any) -> list[str]:
    """What the connected role may do beyond reading (empty: a read-only role). ``cursor`` is
    a DB-API cursor of a psycopg connection."""
    cursor.execute("SELECT current_user, rolsuper, rolcreaterole, rolbypassrls FROM pg_roles "
                   "WHERE rolname = current_user")
    row = cursor.fetchone()
    if row is None:
        return ["is not a role the server lists"]
    _, superuser, createrole, bypassrls = row
    found = []
    if superuser:
        found.append("is a superuser (COPY ... TO PROGRAM, pg_read_file: the whole server)")
    if createrole:
        found.append("may create roles (CREATEROLE)")
    if bypassrls:
        found.append("bypasses row security (BYPASSRLS)")
    cursor.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s) "
                   "AND pg_has_role(current_user, oid, 'USAGE') ORDER BY rolname",
                   [list(SERVER_ROLES)])
    found += [f"is a member of {name}" for (name,) in cursor.fetchall()]
    cursor.execute("SELECT f FROM unnest(%s::text[]) AS f "
                   "WHERE has_function_privilege(f::regprocedure, 'EXECUTE')",
                   [list(SERVER_FUNCTIONS)])
    found += [f"may execute {name}" for (name,) in cursor.fetchall()]
    cursor.execute("SELECT c.relname, p FROM pg_class c "
                   "JOIN pg_namespace n ON n.oid = c.relnamespace, "
                   "unnest(%s::text[]) AS p "
                   "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') "
                   "AND c.relname = ANY(%s) AND has_table_privilege(c.oid, p) "
                   "ORDER BY 1, 2 LIMIT 4", [list(WRITES), list(t.metadata.tables)])
    found += [f"may {priv} {table}" for table, priv in cursor.fetchall()]
    return found


def refuse_powerful(cursor: Any, shown: str) -> None:
    """``UserError`` when the connected role could do more than read the store."""
    found = powers(cursor)
    if not found:
        return
    cursor.execute("SELECT current_user")
    (user,) = cursor.fetchone()
    raise UserError(
        f"`invoke store query` runs SQL only as a role that can read the store and nothing "
        f"else, but {user!r} of {shown} {'; '.join(found)} (a READ ONLY transaction does not "
        "stop that).",
        "Create the query role once with the writer's URL: `invoke store reader "
        "testbed_query --store URL` (docs/store.md), then query with "
        "postgresql://testbed_query@HOST/DATABASE.")


def create_reader(store: Store, role: str) -> bool:
    """Create (if missing) the role ``role`` that may log in and SELECT the store's tables and
    views, and nothing else; grant it those and remember it (a rebuild grants them again).
    Returns whether the role was created."""
    if store.location.is_duckdb:
        raise UserError("A DuckDB store needs no query role: `invoke store query` opens the "
                        "file read-only with file access off.",
                        "Use `invoke store reader` with a postgresql:// store.")
    if not ROLE_NAME.fullmatch(role):
        raise UserError(f"Role name {role!r} is not a plain PostgreSQL name.",
                        "Use lower-case letters, digits and _ (e.g. testbed_query).")
    with store.begin() as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                              {"r": role}).scalar() is not None
        if not exists:
            try:
                with conn.begin_nested():
                    conn.execute(sa.text(
                        f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE '
                        "NOREPLICATION NOBYPASSRLS"))
            except sa.exc.ProgrammingError as exc:
                raise UserError(
                    f"Cannot create the role {role!r} on {store.location.shown}: the writer's "
                    "role may not create roles.",
                    f"Ask the server's administrator to run `CREATE ROLE {role} LOGIN`, then "
                    "run this command again (it grants the rights).") from exc
        grant_reader(conn, role)
        conn.execute(t.store_meta.delete().where(t.store_meta.c.key == META_KEY))
        conn.execute(t.store_meta.insert().values(key=META_KEY, value=role))
    return not exists


def grant_reader(conn: sa.Connection, role: str) -> None:
    """SELECT on the store's tables and views (and nothing more) for ``role``."""
    db = conn.execute(sa.text("SELECT current_database()")).scalar()
    schema = conn.execute(sa.text("SELECT current_schema()")).scalar()
    conn.execute(sa.text(f'GRANT CONNECT ON DATABASE "{db}" TO "{role}"'))
    conn.execute(sa.text(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"'))
    names = [n for n in (*t.metadata.tables, *t.VIEWS)
             if sa.inspect(conn).has_table(n) or n in sa.inspect(conn).get_view_names()]
    for name in names:
        conn.execute(sa.text(f'GRANT SELECT ON "{name}" TO "{role}"'))


def regrant(conn: sa.Connection) -> None:
    """After the derived tables were dropped and made again: the query role's SELECT again."""
    role = conn.execute(sa.select(t.store_meta.c.value)
                        .where(t.store_meta.c.key == META_KEY)).scalar()
    if role and ROLE_NAME.fullmatch(role):
        grant_reader(conn, role)
