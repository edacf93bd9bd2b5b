"""JSON Schema (Draft 2020-12) validation with messages a user can act on.

Two engines read the same schemas. ``jsonschema`` is the reference: it finds every
violation and says where and why. The compiled one, ``jsonschema_rs`` (Rust, from PyPI
``jsonschema-rs``), answers "valid or not" 10 to 100 times faster, so a valid document (the
common case: every result a run writes, every file the store ingests) costs only that; a
document it refuses is validated again by the reference, whose errors are the answer (and
whose verdict wins, should the two ever disagree: ``tests/test_schema_engines.py`` runs both
over every fixture and every hostile document and requires the same verdicts). Where no
``jsonschema-rs`` wheel exists for the platform, or with ``BENCH_SCHEMA_ENGINE=jsonschema``,
the reference does everything.

Regular expressions follow ECMA-262, as JSON Schema says, in both engines: ``$`` is the end
of the string. Python's ``re`` lets ``$`` match before a final newline as well, so the
reference checks ``pattern`` with ``$`` read as ``\\Z``, and ``"run-1\\n"`` is no id.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match

from bench.errors import cut
from bench.jsonio import json_path
from bench.paths import schemas_dir

ENGINE_ENV = "BENCH_SCHEMA_ENGINE"  # "jsonschema": the reference engine alone


@dataclass(frozen=True)
class SchemaProblem:
    path: str  # JSON path, e.g. $.metrics.throughput_items_per_s.value
    rule: str  # the schema keyword broken, e.g. "type"
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} (rule: {self.rule})"


@functools.cache
def ecma_pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled for Python with ECMA-262's ``$`` (the end of the string: every
    unescaped ``$`` outside a character class becomes ``\\Z``)."""
    out, in_class, escaped = [], False, False
    for ch in pattern:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "$":
            out.append("\\Z")
            continue
        out.append(ch)
    return re.compile("".join(out))


def _pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not ecma_pattern(patrn).search(instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


# The reference engine: Draft 2020-12 with ECMA-262's ``$`` in ``pattern``.
Reference = validators.extend(Draft202012Validator, {"pattern": _pattern})


@functools.cache
def validator(name: str) -> Any:
    """The reference validator of ``schemas/<name>.schema.json``."""
    path = schemas_dir() / f"{name}.schema.json"
    schema = json.loads(Path(path).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Reference(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def formats_in(schema: Any) -> set[str]:
    """Every ``format`` a schema names."""
    if isinstance(schema, dict):
        own = {schema["format"]} if isinstance(schema.get("format"), str) else set()
        return own.union(*(formats_in(v) for v in schema.values()))
    if isinstance(schema, list):
        return set().union(*(formats_in(v) for v in schema))
    return set()


@functools.cache
def fast_validator(name: str) -> Any | None:
    """The compiled validator of the same schema (None: not installed here, or switched off
    with ``BENCH_SCHEMA_ENGINE=jsonschema``). Formats are checked by the reference's own
    format checker, so both engines check the same ones (those whose checker is installed)."""
    if os.environ.get(ENGINE_ENV, "").strip().lower() == "jsonschema":
        return None
    try:
        import jsonschema_rs
    except ImportError:  # no wheel for this platform: the reference alone
        return None
    checker = Draft202012Validator.FORMAT_CHECKER
    schema = validator(name).schema
    formats = {f: functools.partial(_conforms, checker, f) for f in formats_in(schema)}
    try:
        return jsonschema_rs.Draft202012Validator(schema, validate_formats=True,
                                                  formats=formats)
    except Exception:  # a release that cannot compile it (the reference checked the schema)
        return None


def _conforms(checker: Any, fmt: str, value: Any) -> bool:
    return bool(checker.conforms(value, fmt))


def engine() -> str:
    """The engine that decides what is valid here: ``jsonschema-rs`` or ``jsonschema``."""
    return "jsonschema-rs" if fast_validator("result") is not None else "jsonschema"


def fast_verdict(doc: Any, schema: str) -> bool | None:
    """The compiled validator's verdict (None: not installed, or it cannot take this value,
    such as a string holding a lone surrogate, which only the reference reads)."""
    fast = fast_validator(schema)
    if fast is None:
        return None
    try:
        return bool(fast.is_valid(doc))
    except Exception:  # UnicodeEncodeError here, SystemError in older releases: the reference
        return None


def reference_errors(doc: Any, schema: str) -> list[SchemaProblem]:
    """Every violation the reference engine finds, most relevant first."""
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


def validation_errors(doc: Any, schema: str) -> list[SchemaProblem]:
    """Every violation of ``schemas/<schema>.schema.json``, most relevant first: the compiled
    validator accepts, the reference explains a refusal."""
    if fast_verdict(doc, schema):
        return []
    return reference_errors(doc, schema)


def subschema_errors(doc: Any, schema: str, definition: str) -> list[SchemaProblem]:
    """Violations of one ``$defs`` entry of a schema (run rules given on the command line
    are checked by the suite schema's own definition of rules)."""
    root = validator(schema).schema
    sub = {**root["$defs"][definition], "$defs": root["$defs"]}
    errors = list(Reference(sub).iter_errors(doc))
    if not errors:
        return []
    first = best_match(errors)
    return [SchemaProblem(json_path(e.absolute_path), str(e.validator), e.message)
            for e in [first, *[e for e in errors if e is not first]]]


def read_yaml_file(path: Path, schema: str, what: str, limit: int | None = None,
                   before_check: Callable[[Any], None] | None = None) -> Any:
    """A YAML file a user writes (a suite, audit tolerances), checked against
    ``schemas/<schema>.schema.json``: every problem is a ``UserError`` naming the file, the
    JSON path and the fix. ``limit``: its most bytes (default: a document's limit).
    ``before_check`` sees the parsed document before the schema does (to refuse an older
    format with its own message)."""
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
    if before_check is not None:
        before_check(doc)
    errors = validation_errors(doc, schema)
    if errors:
        first = errors[0]
        raise UserError(
            f"{what} {path} breaks the {schema} schema at {first.path}: {first.message}"
            + (f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else "") + ".",
            f"Fix that field; schemas/{schema}.schema.json lists what each field accepts.")
    return doc
