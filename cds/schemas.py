"""The JSON Schemas in ``schemas/``, compiled once, and validation that reports fields, not values.

Schemas ship inside the wheel as ``cds/_schemas`` and live at the top-level ``schemas/`` folder in a source
checkout (editable install); both are found here. Messages never echo the offending value back, so a bad
patient id cannot leak into a log line through an error message.

Two validators, one answer: a compiled one (``jsonschema-rs``) says in microseconds whether a document is
valid, which it is on every call an EHR gets right; only a document it refuses goes to ``jsonschema``, whose
errors name the fields. The compiled one gets the same schema with the Python regex anchors written the ECMA
way (anchors as ``^`` and ``$``, digits as ``[0-9]``: the same language, or narrower), so it never accepts what
``jsonschema`` would refuse; when it refuses what ``jsonschema`` accepts, ``jsonschema`` decides.
"""

from __future__ import annotations

import functools
import itertools
import json
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from cds.errors import SchemaViolation

MAX_PROBLEMS = 10
# How deeply a body we echo or explain may nest. FHIR resources need a few dozen levels; what we write back (an
# order inside a system action inside the answer) and the schema's error messages go deeper still, and both fail
# far below the 1,024 levels the JSON parser allows (the JSON writer at 255, Python's recursion near 1,000).
MAX_DEPTH = 64


def schema_dir() -> Path:
    packaged = resources.files("cds") / "_schemas"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / "schemas"


@functools.cache
def _registry() -> tuple[Registry, dict[str, dict]]:
    by_name: dict[str, dict] = {}
    registry = Registry()
    for path in sorted(schema_dir().glob("*.schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        name = path.name.removesuffix(".schema.json")
        by_name[name] = schema
        registry = registry.with_resource(schema["$id"], Resource.from_contents(schema))
    return registry, by_name


def schema(name: str) -> dict:
    return _registry()[1][name]


@functools.cache
def validator(name: str) -> Draft202012Validator:
    """The validator for ``name`` (a file's stem), or for one of its definitions as ``name#definition``."""
    registry, by_name = _registry()
    base, _, definition = name.partition("#")
    s = by_name[base]
    Draft202012Validator.check_schema(s)
    if definition:
        s = {"$ref": f"{s['$id']}#/$defs/{definition}"}
    return Draft202012Validator(s, registry=registry)


@functools.cache
def compiled(name: str):
    """The compiled validator for ``name`` (as :func:`validator`), or None where it cannot be built."""
    try:
        import jsonschema_rs
    except ImportError:  # pragma: no cover  (a dependency; without it validation is only slower)
        return None
    by_name = _registry()[1]
    base, _, definition = name.partition("#")
    s = by_name[base]
    if definition:
        s = {"$schema": s.get("$schema"), "$defs": s.get("$defs", {}), "$ref": f"#/$defs/{definition}"}
    try:
        return jsonschema_rs.validator_for(_ecma(s), validate_formats=False)
    except Exception:  # noqa: BLE001  (a construct it does not support: jsonschema alone is still right)
        return None


def _ecma(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: (_ecma_pattern(v) if k == "pattern" and isinstance(v, str) else _ecma(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_ecma(v) for v in node]
    return node


def _ecma_pattern(pattern: str) -> str:
    return pattern.replace("\\A", "^").replace("\\Z", "$").replace("\\d", "[0-9]")


def is_valid(name: str, instance: Any) -> bool:
    """True when the compiled validator accepts ``instance`` (False also when it cannot say)."""
    fast = compiled(name)
    if fast is None:
        return False
    try:
        return bool(fast.is_valid(instance))
    except Exception:  # noqa: BLE001  (a value it cannot take, e.g. an integer past 64 bits: ask jsonschema)
        return False


def validate(name: str, instance: Any) -> None:
    """Raise :class:`SchemaViolation` naming every offending field (most relevant first)."""
    if is_valid(name, instance):
        return
    try:
        errors = list(itertools.islice(validator(name).iter_errors(instance), MAX_PROBLEMS))  # the first few
    except RecursionError:  # the error messages quote values, recursively: a deep enough body cannot be explained
        raise SchemaViolation([("", f"the body nests deeper than this service reads ({MAX_DEPTH} levels)")]) from None
    if not errors:
        return
    first = best_match(errors)
    ordered = [first] + [e for e in errors if e is not first]
    problems = []
    for error in ordered[:MAX_PROBLEMS]:
        deepest = _first_branch(error) if error.context else error
        problems.append(describe(deepest))
    raise SchemaViolation(problems)


def _first_branch(error: ValidationError) -> ValidationError:
    """For oneOf / anyOf, what the first alternative (the usual shape) lacks; else the most relevant error."""
    if error.validator in ("oneOf", "anyOf"):
        first = [e for e in error.context if e.relative_schema_path and e.relative_schema_path[0] == 0]
        if first:
            return best_match(first)
    return best_match([error])


def field_path(error: ValidationError) -> str:
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def describe(error: ValidationError) -> tuple[str, str]:
    """(expression, message) for one error, worded for a person and free of the offending value."""
    path = field_path(error)
    where = path or "the request body"
    kind, expected = error.validator, error.validator_value
    if kind == "required":
        missing = error.message.split("'")[1] if "'" in error.message else "a member"
        full = f"{path}.{missing}" if path else missing
        return full, f"{full} is required"
    if kind == "type":
        return path, f"{where} must be of JSON type {expected}"
    if kind == "pattern":
        return path, f"{where} does not have the required format ({expected})"
    if kind == "const":
        return path, f"{where} must be {json.dumps(expected)}"
    if kind == "enum":
        return path, f"{where} must be one of {', '.join(json.dumps(v) for v in expected)}"
    if kind in ("minLength", "minItems", "minProperties"):
        return path, f"{where} must not be empty (at least {expected})"
    if kind in ("maxLength", "maxItems"):
        return path, f"{where} is too long (at most {expected})"
    if kind == "minimum":
        return path, f"{where} must be at least {expected}"
    if kind == "dependentRequired":
        return path, f"{where}: {error.message}"
    if kind == "not":
        return path, f"{where} has a member that is not allowed in this combination"
    return path, f"{where} is not valid ({kind})"


def deeper_than(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when ``value`` nests objects and arrays more than ``limit`` levels (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            if isinstance(child, dict | list):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False
