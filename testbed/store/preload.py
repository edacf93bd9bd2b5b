"""What the fork server of the ingest's worker processes loads before it forks them
(``testbed.store.ingest``): the ingest's modules, and the schema validators of the documents
the store derives rows from, built once (a third of a second) instead of once per worker."""

from bench.schema import fast_validator, validator
from testbed.store.rows import EXTRACTORS

for _schema in EXTRACTORS:
    validator(_schema)
    fast_validator(_schema)
