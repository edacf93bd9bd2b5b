"""JSON Schema (Draft 2020-12) validation with messages a user can act on."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from bench.errors import cut
from bench.jsonio import json_path
from bench.paths import schemas_dir


@dataclass(frozen=True)
class SchemaProblem:
    path: str  # JSON path, e.g. $.metrics.throughput_items_per_s.value
    rule: str  # the schema keyword broken, e.g. "type"
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} (rule: {self.rule})"


@functools.cache
def validator(name: str) -> Draft202012Validator:
    path = schemas_dir() / f"{name}.schema.json"
    schema = json.loads(Path(path).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def validation_errors(doc: Any, schema: str) -> list[SchemaProblem]:
    """Every violation of ``schemas/<schema>.schema.json``, most relevant first."""
    errors = list(validator(schema).iter_errors(doc))
    if not errors:
        return []
    first = best_match(errors)
    ordered = [first, *[e for e in errors if e is not first]]
    problems = []
    for err in ordered:
        # For oneOf/anyOf, the deepest sub-error says more than "is not valid under any".
        leaf = best_match(err.context) if err.context else err
        # jsonschema's message quotes the whole offending value: cut it to a line.
        problems.append(SchemaProblem(cut(json_path(leaf.absolute_path), 200),
                                      str(leaf.validator), cut(leaf.message)))
    return problems


def subschema_errors(doc: Any, schema: str, definition: str) -> list[SchemaProblem]:
    """Violations of one ``$defs`` entry of a schema (run rules given on the command line
    are checked by the suite schema's own definition of rules)."""
    root = validator(schema).schema
    sub = {**root["$defs"][definition], "$defs": root["$defs"]}
    errors = list(Draft202012Validator(sub).iter_errors(doc))
    if not errors:
        return []
    first = best_match(errors)
    return [SchemaProblem(json_path(e.absolute_path), str(e.validator), e.message)
            for e in [first, *[e for e in errors if e is not first]]]


def read_yaml_file(path: Path, schema: str, what: str, limit: int | None = None) -> Any:
    """A YAML file a user writes (a suite, audit tolerances), checked against
    ``schemas/<schema>.schema.json``: every problem is a ``UserError`` naming the file, the
    JSON path and the fix. ``limit``: its most bytes (default: a document's limit)."""
    import yaml

    from bench.errors import UserError
    from bench.jsonio import MAX_DEPTH, UnreadableDocument, check_tree, read_document_bytes

    try:
        data = read_document_bytes(Path(path), limit=limit)
    except UnreadableDocument as exc:
        raise UserError(f"{what} {path} {exc}.", "Give an existing, readable file"
                        + (" (a few kB of rules)." if exc.rule == "size" else ".")) from exc
    try:
        doc = yaml.safe_load(data.decode("utf-8"))
        check_tree(doc)
    except UnreadableDocument as exc:
        raise UserError(f"{what} {path} {exc}.",
                        f"Fix that value; schemas/{schema}.schema.json lists what each field "
                        "accepts.") from exc
    except RecursionError as exc:  # nesting too deep for the YAML parser itself
        raise UserError(f"{what} {path} nests deeper than {MAX_DEPTH} levels.",
                        "Flatten the document; no file the bench reads nests that deep.") \
            from exc
    except (UnicodeDecodeError, yaml.YAMLError, ValueError) as exc:
        # ValueError: an integer too long to convert.
        raise UserError(f"{what} {path} is not valid YAML: {cut(str(exc))}.",
                        "Fix the syntax at the line shown.") from exc
    errors = validation_errors(doc, schema)
    if errors:
        first = errors[0]
        raise UserError(
            f"{what} {path} breaks the {schema} schema at {first.path}: {first.message}"
            + (f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else "") + ".",
            f"Fix that field; schemas/{schema}.schema.json lists what each field accepts.")
    return doc
