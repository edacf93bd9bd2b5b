"""The results store: every validated document in one database, and what is derived from it.

DuckDB (one file beside ``results/``) or PostgreSQL (a lab's shared server) through one
SQLAlchemy Core layer (docs/store.md). The documents stay the source of truth: they are kept
byte for byte and every other table is derived from them.
"""

from testbed.store.store import Store, open_store

__all__ = ["Store", "open_store"]
