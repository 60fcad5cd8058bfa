"""The JSON Schema of the YAML form (LANGUAGE.md §7), built from the block registry.

``grammar/flow.schema.json`` is *generated* by :func:`build_schema`, so the options a
step may carry are, by construction, the options the ``.flow`` checker resolves; a
test keeps the committed file equal to the generated one.  Regenerate it with::

    python -m flowspec.syntax.schema          # writes grammar/flow.schema.json
    python -m flowspec.syntax.schema --check  # exit 1 if the committed file is stale

What a schema can and cannot say:

- Strings stand for names, integer expressions (``"2*h + 1"``) and, quoted inside,
  ``.flow`` strings (``'"cuda:0"'``); the YAML front end parses them.  A name may be a
  ``let`` constant, so an enum option accepts any name: an unknown word such as
  ``act: rleu`` is reported by the checker (E200 with "did you mean"), as in ``.flow``.
- A step's ``op`` may name a block declared under ``blocks:`` of the same file, which
  a schema cannot see; an unknown ``op`` is the checker's E200.
- Literal types and ranges, unknown options, nets and estimators with their own
  options, arity of ``in`` and the ``require`` properties are in the schema, for
  editors and other tools.  flowspec's YAML front end stops only on structure errors
  and leaves errors in values to the checker, so that a spec gets the same
  diagnostics in both syntaxes.
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from flowspec.kinds import REGISTRY
from flowspec.kinds.options import (
    Bool,
    Enum,
    Float,
    Int,
    IntList,
    Option,
    OptionType,
    Str,
    Tensor,
)
from flowspec.syntax.dsl import KEYWORDS

SCHEMA_ID = "urn:flowspec:schema:flow:1"
SCHEMA_FILE = "flow.schema.json"

_KW = "|".join(sorted(KEYWORDS))
_WORD = r"[A-Za-z_][A-Za-z0-9_]*"
#: a ``.flow`` name: not a keyword, so every YAML spec has a ``.flow`` form
NAME_PATTERN = rf"^(?!(?:{_KW})$){_WORD}$"
_SEGMENT = rf"(?!(?:{_KW})(?:\.|$)){_WORD}"
#: a block kind, possibly dotted: ``coupling.affine``
KIND_PATTERN = rf"^{_SEGMENT}(?:\.{_SEGMENT})*$"
#: a string that can only be a number, a name or an integer expression
EXPRESSION_PATTERN = r"^[\s0-9A-Za-z_.+\-*/%()]+$"

#: the keys that tell statements apart, in the order they are tried
STATEMENT_KEYS = (
    "op",
    "let",
    "repeat",
    "on",
    "input",
    "context",
    "direction",
    "latent",
    "dequantize",
    "require",
    "output",
    "return",
)
#: the keys of a step that are not block options
STEP_KEYS = ("op", "in", "out")


def _ref(name: str) -> dict:
    return {"$ref": f"#/$defs/{name}"}


def _requirements() -> dict[str, bool]:
    from flowspec.kinds.words import REQUIREMENTS

    return dict(REQUIREMENTS)


# ------------------------------------------------------------------ option types


def _number(t: Int | Float, integer: bool) -> dict:
    literal: dict[str, Any] = {"type": "integer" if integer else "number"}
    if t.min is not None:
        key = "exclusiveMinimum" if getattr(t, "min_open", False) else "minimum"
        literal[key] = t.min
    if t.max is not None:
        key = "exclusiveMaximum" if getattr(t, "max_open", False) else "maximum"
        literal[key] = t.max
    return literal


def option_schema(t: OptionType) -> dict:
    """The schema of one option type of the registry."""
    if isinstance(t, Int):
        return {"anyOf": [_number(t, True), _ref("expression")], "description": t.name}
    if isinstance(t, Float):
        return {"anyOf": [_number(t, False), _ref("expression")], "description": t.name}
    if isinstance(t, Bool):
        return {"anyOf": [{"type": "boolean"}, _ref("name")], "description": t.name}
    if isinstance(t, Str):
        return {"type": "string", "description": t.name}
    if isinstance(t, Tensor):
        return {**_ref("name"), "description": "a tensor name"}
    if isinstance(t, IntList):
        item: dict[str, Any] = {"type": "integer"}
        if t.item_min is not None:
            item["minimum"] = t.item_min
        if t.item_max is not None:
            item["maximum"] = t.item_max
        array: dict[str, Any] = {
            "type": "array",
            "items": {"anyOf": [item, _ref("expression")]},
            "minItems": t.min_len,
        }
        if t.max_len is not None:
            array["maxItems"] = t.max_len
        alternatives = [array, _ref("expression")]
        if t.min_len <= 1:  # `hidden: 64` means one layer of 64
            alternatives.insert(1, item)
        return {"anyOf": alternatives, "description": t.name}
    if isinstance(t, Enum):
        return enum_schema(t)
    raise TypeError(f"no schema for option type {t!r}")  # a new type needs a rule here


def _options_object(options: tuple[Option, ...], fixed: dict[str, Any]) -> dict:
    properties = dict(fixed)
    for o in options:
        properties[o.name] = {**option_schema(o.type)}
        if o.doc:
            properties[o.name]["description"] = f"{o.type.name}: {o.doc}"
    required = [o.name for o in options if o.required]
    out: dict[str, Any] = {"properties": properties, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def enum_schema(t: Enum) -> dict:
    """A word (or a constant), or ``{kind: WORD, ...options of that word}``."""
    words = list(t.words)
    call: dict[str, Any] = {
        "type": "object",
        "required": ["kind"],
        "properties": {"kind": {"enum": words}},
        "allOf": [
            {
                "if": {"properties": {"kind": {"const": w}}, "required": ["kind"]},
                "then": _options_object(opts, {"kind": {"const": w}}),
            }
            for w, opts in t.words.items()
        ],
    }
    return {
        "anyOf": [{"enum": words}, _ref("name"), call],
        "description": f"{t.what}: {t.name}",
    }


# ------------------------------------------------------------------------- steps


def step_schema(kind: str) -> dict:
    """The options of one block kind, as a step ``{op, in, out, ...options}``."""
    spec = REGISTRY[kind]
    tensors: dict[str, Any]
    if spec.inputs == 1:
        tensors = {
            "anyOf": [_ref("name"), {"type": "array", "items": _ref("name"), "maxItems": 1}],
            "description": "the one tensor it consumes",
        }
    elif spec.inputs is None:
        tensors = {
            "type": "array",
            "items": _ref("name"),
            "minItems": 2,
            "description": "the two or more tensors it consumes",
        }
    else:
        tensors = {
            "type": "array",
            "items": _ref("name"),
            "minItems": spec.inputs,
            "maxItems": spec.inputs,
            "description": f"the {spec.inputs} tensors it consumes",
        }
    fixed = {"op": {"const": kind}, "in": tensors, "out": _ref("names")}
    out = _options_object(spec.options, fixed)
    out["description"] = spec.summary
    return out


def _statement() -> dict:
    branches = []
    for i, key in enumerate(STATEMENT_KEYS):
        condition: dict[str, Any] = {"required": [key]}
        earlier = STATEMENT_KEYS[:i]
        if earlier:
            condition["not"] = {"anyOf": [{"required": [k]} for k in earlier]}
        branches.append({"if": condition, "then": _ref(f"stmt.{key}")})
    return {
        "type": "object",
        "description": "a statement: a step {op, in, out, ...} or one of "
        + ", ".join(f"`{k}`" for k in STATEMENT_KEYS[1:]),
        "anyOf": [{"required": [k]} for k in STATEMENT_KEYS],
        "allOf": branches,
    }


def _closed(required: list[str], properties: dict, description: str) -> dict:
    return {
        "type": "object",
        "description": description,
        "required": required,
        "properties": properties,
        "additionalProperties": False,
    }


def build_schema() -> dict:
    """The whole JSON Schema (2020-12) of a YAML spec."""
    requirements = _requirements()
    with_bound = [r for r, bounded in requirements.items() if bounded]
    defs: dict[str, Any] = {
        "name": {
            "type": "string",
            "pattern": NAME_PATTERN,
            "description": "a name (letters, digits, `_`; not a keyword)",
        },
        "kind": {
            "type": "string",
            "pattern": KIND_PATTERN,
            "description": "a block kind, such as `coupling.affine`, or a block of `blocks:`",
        },
        "names": {
            "anyOf": [
                _ref("name"),
                {"type": "array", "items": _ref("name"), "minItems": 1},
            ],
            "description": "a tensor name or a list of tensor names",
        },
        "expression": {
            "type": "string",
            "pattern": EXPRESSION_PATTERN,
            "description": 'a name or an integer expression such as "2*h + 1"',
        },
        "value": {
            "anyOf": [
                {"type": ["number", "boolean"]},
                {"type": "string"},
                {"type": "array", "items": _ref("value")},
                _ref("call"),
            ],
            "description": "a value: a number, true/false, a name, an expression such as "
            '"2*h + 1", a list, or {kind: ..., options}',
        },
        "call": {
            "type": "object",
            "required": ["kind"],
            "properties": {"kind": _ref("kind")},
            "propertyNames": {"pattern": NAME_PATTERN},
            "additionalProperties": _ref("value"),
            "description": "a net or an enum word with options, such as "
            "{kind: mlp, hidden: [64, 64]}",
        },
        "word_or_call": {
            "anyOf": [_ref("name"), _ref("call")],
            "description": "a word such as `normal`, or {kind: WORD, ...options}",
        },
        "count": {
            "anyOf": [{"type": "integer", "minimum": 0}, _ref("expression")],
            "description": "a non-negative integer or an integer expression",
        },
        "shape": {
            "type": "array",
            "minItems": 1,
            "items": {
                "anyOf": [{"type": "integer", "minimum": 1}, _ref("expression")],
                "description": "a positive integer or an integer expression",
            },
            "description": "the shape without the batch axis, such as [3, 32, 32]",
        },
        "body": {
            "type": "array",
            "items": _ref("statement"),
            "description": "a list of statements",
        },
        "statement": _statement(),
        "stmt.op": {
            "type": "object",
            "description": "a step: {op: KIND, in: TENSORS, out: TENSORS, ...options}",
            "required": ["op", "in"],
            "properties": {
                "op": _ref("kind"),
                "in": {**_ref("names"), "description": "the tensor(s) the block consumes"},
                "out": {**_ref("names"), "description": "the tensor(s) it binds (default: in)"},
            },
            "propertyNames": {"pattern": NAME_PATTERN},
            "additionalProperties": _ref("value"),
            "allOf": [
                {
                    "if": {"properties": {"op": {"const": kind}}, "required": ["op"]},
                    "then": _ref(f"step.{kind}"),
                }
                for kind in REGISTRY
            ],
        },
        "stmt.let": _closed(
            ["let", "value"],
            {"let": _ref("name"), "value": _ref("value")},
            "a constant: {let: NAME, value: VALUE}",
        ),
        "stmt.repeat": _closed(
            ["repeat", "body"],
            {"repeat": _ref("count"), "as": _ref("name"), "body": _ref("body")},
            "a repeat: {repeat: N, as: INDEX, body: [...]}",
        ),
        "stmt.on": _closed(
            ["on", "body"],
            {
                "on": {
                    "type": "string",
                    "minLength": 1,
                    "description": "a device: cpu, cuda, cuda:1, mps or meta",
                },
                "body": _ref("body"),
            },
            "a placement: {on: DEVICE, body: [...]}",
        ),
        **{
            f"stmt.{key}": _closed(
                [key, "shape"],
                {key: _ref("name"), "shape": _ref("shape")},
                f"{article} {key} statement: {{{key}: NAME, shape: [...]}}",
            )
            for key, article in (("input", "an"), ("context", "a"))
        },
        "stmt.direction": _closed(
            ["direction"],
            {"direction": _ref("direction")},
            "a direction statement: {direction: generative}",
        ),
        "direction": {
            "type": "string",
            "description": "normalizing (data → latent, the default) or generative "
            "(latent → data)",
        },
        "stmt.latent": _closed(
            ["latent"],
            {"latent": _ref("word_or_call")},
            "a latent statement: {latent: normal}",
        ),
        "stmt.dequantize": _closed(
            ["dequantize"],
            {"dequantize": _ref("word_or_call")},
            "a dequantize statement: {dequantize: {kind: uniform, bits: 8}}",
        ),
        "stmt.require": {
            **_closed(
                ["require"],
                {
                    "require": {
                        "enum": list(requirements),
                        "description": "a property: " + ", ".join(requirements),
                    },
                    "max": {
                        "anyOf": [{"type": "number", "exclusiveMinimum": 0}, _ref("expression")],
                        "description": "the bound L of `lipschitz <= L`",
                    },
                },
                "a constraint: {require: PROPERTY, max: L}",
            ),
            "if": {"properties": {"require": {"enum": with_bound}}, "required": ["require"]},
            "then": {"required": ["max"]},
            "else": {"not": {"required": ["max"]}},
        },
        "stmt.output": _closed(
            ["output"], {"output": _ref("names")}, "an output statement: {output: [z]}"
        ),
        "stmt.return": _closed(
            ["return"], {"return": _ref("names")}, "a return statement: {return: [x]}"
        ),
        "param": {
            "anyOf": [
                _ref("name"),
                {
                    "type": "object",
                    "minProperties": 1,
                    "maxProperties": 1,
                    "propertyNames": {"pattern": NAME_PATTERN},
                    "additionalProperties": _ref("value"),
                },
            ],
            "description": "a tensor parameter NAME, or an option {NAME: DEFAULT}",
        },
        "flow": _closed(
            ["name"],
            {
                "name": _ref("name"),
                "input": _closed(
                    ["name", "shape"],
                    {"name": _ref("name"), "shape": _ref("shape")},
                    "a flow's input: {name: x, shape: [2]}",
                ),
                "context": _closed(
                    ["name", "shape"],
                    {"name": _ref("name"), "shape": _ref("shape")},
                    "a flow's conditioning tensor: {name: y, shape: [1]}",
                ),
                "direction": _ref("direction"),
                "latent": _ref("word_or_call"),
                "dequantize": _ref("word_or_call"),
                "body": _ref("body"),
                "output": _ref("names"),
            },
            "a flow: {name, input, context, direction, latent, dequantize, body, output}",
        ),
        "block": _closed(
            ["name"],
            {
                "name": _ref("name"),
                "params": {"type": "array", "items": _ref("param")},
                "body": _ref("body"),
                "return": _ref("names"),
            },
            "a reusable block: {name, params, body, return}",
        ),
    }
    for kind in REGISTRY:
        defs[f"step.{kind}"] = step_schema(kind)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "flowspec YAML spec",
        "description": "A normalizing flow in the YAML form of the .flow language "
        "(LANGUAGE.md §7). Generated from the block registry by flowspec.syntax.schema.",
        "type": "object",
        "required": ["flowspec"],
        "properties": {
            "flowspec": {"const": 1, "description": "the version of the format: 1"},
            "lets": {
                "type": "array",
                "items": _ref("stmt.let"),
                "description": "constants visible in every flow and block: {let, value}",
            },
            "blocks": {"type": "array", "items": _ref("block")},
            "flows": {"type": "array", "items": _ref("flow")},
        },
        "additionalProperties": False,
        "$defs": defs,
    }


def dumps(schema: dict) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


@lru_cache(maxsize=1)
def load_schema() -> dict:
    """The committed schema, shipped as package data of ``flowspec.grammar``."""
    text = resources.files("flowspec.grammar").joinpath(SCHEMA_FILE).read_text("utf-8")
    return json.loads(text)


@lru_cache(maxsize=1)
def validator():
    """A 2020-12 validator of the committed schema (built once: it is not cheap).

    JSON has one number type, so JSON Schema counts ``2.0`` as an integer; flowspec
    does not (an integer option given ``2.0`` or ``1e308`` is E201), and neither does
    this validator."""
    from jsonschema import Draft202012Validator, validators

    def integer(checker, value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    checker = Draft202012Validator.TYPE_CHECKER.redefine("integer", integer)
    strict = validators.extend(Draft202012Validator, type_checker=checker)
    return strict(load_schema())


def sub_validator(schema: dict, defs: dict):
    """:func:`validator`'s kind of validator for ``schema``, a part of the committed
    schema whose ``#/$defs/...`` references resolve against ``defs``."""
    return type(validator())({**schema, "$defs": defs})


def schema_path() -> Path:
    return Path(str(resources.files("flowspec.grammar").joinpath(SCHEMA_FILE)))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = dumps(build_schema())
    path = schema_path()
    if "--check" in argv:
        if not path.is_file() or path.read_text("utf-8") != text:
            print(f"{path} is stale: run python -m flowspec.syntax.schema", file=sys.stderr)
            return 1
        return 0
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
