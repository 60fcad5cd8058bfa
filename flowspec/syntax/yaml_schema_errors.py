"""Stage 2 of the YAML front end (:mod:`flowspec.syntax.yaml`): schema errors.

The loaded data is validated against ``grammar/flow.schema.json`` (generated from the
block registry) and each error is mapped back to the YAML node at its path.  Only
*structure* errors stop here — the YAML counterpart of a ``.flow`` syntax error: E100
(an unknown key, a statement that is no statement, a keyword used as a name) or E201 (a
missing key, a wrong type where the AST has no room for the value).  Errors in values
the AST can hold are left to the checker (:meth:`_SchemaErrors._deferred`).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

import yaml as pyyaml

from flowspec.core.diagnostics import Diagnostic
from flowspec.core.names import did_you_mean
from flowspec.kinds.options import describe
from flowspec.syntax import yaml_errors
from flowspec.syntax.yaml_load import _CORE, _is_keyword, _is_name, _Reader


def _field(path) -> str:
    keys = [p for p in path if isinstance(p, str)]
    if not keys:
        return "the spec"
    if isinstance(path[-1], int):
        return f"an item of `{keys[-1]}`"
    return f"`{keys[-1]}`"


def _noun(schema: dict) -> str:
    """'a step' from the description "a step: {op: ...}"."""
    text = schema.get("description", "")
    return text.split(":")[0] if ":" in text else "this mapping"


class _Statements:
    """The schema's errors in one statement, found without its ``if``/``then`` chains.

    The schema picks a statement's definition by a chain of ``if``/``then`` (the first
    statement key present: ``op``, ``let``, ``repeat``, ...) and a step's options by
    another (one entry per block kind, on the value of ``op``).  jsonschema evaluates
    every ``if`` of both chains for every statement, which made validation 80 % of the
    time of checking a YAML spec (0.8 ms a statement).  For a mapping the chains'
    conditions are plain lookups, so here they are decided in Python and only the
    chosen definitions are validated, in the schema's order; the errors are the ones
    the whole schema reports (``tests/test_yaml_schema_split.py`` compares them).
    Anything else than a mapping goes through the schema's own ``statement``
    definition, whose conditions hold vacuously there.
    """

    def __init__(self) -> None:
        from flowspec.syntax.schema import load_schema, sub_validator

        defs = load_schema()["$defs"]
        statement, step = dict(defs["statement"]), dict(defs["stmt.op"])
        #: the statement keys in the chain's order, each with its definition
        self.keys: list[tuple[str, Any]] = []
        for entry in statement.pop("allOf"):
            (key,) = set(entry["if"]["required"])
            self.keys.append((key, _target(entry["then"], defs)))
        #: the step definitions by block kind
        self.steps: dict[str, Any] = {}
        for entry in step.pop("allOf"):
            kind = entry["if"]["properties"]["op"]["const"]
            assert entry["if"]["required"] == ["op"]
            self.steps[kind] = sub_validator(defs[_ref_name(entry["then"])], defs)
        self.head = sub_validator(statement, defs)
        self.whole = sub_validator({"$ref": "#/$defs/statement"}, defs)
        self.defs = {key: sub_validator(step if key == "op" else d, defs) for key, d in self.keys}

    def is_statement(self, schema: dict) -> bool:
        """Whether ``schema`` is the schema's ``statement`` definition (or its head)."""
        return schema.get("anyOf") == self.head.schema["anyOf"]

    def errors(self, stmt: Any):
        if not isinstance(stmt, dict):
            yield from self.whole.iter_errors(stmt)
            return
        yield from self.head.iter_errors(stmt)
        key = next((k for k, _ in self.keys if k in stmt), None)
        if key is None:
            return
        yield from self.defs[key].iter_errors(stmt)
        op = stmt.get("op")
        if key == "op" and isinstance(op, str) and op in self.steps:
            yield from self.steps[op].iter_errors(stmt)


def _ref_name(schema: dict) -> str:
    ref = schema["$ref"]
    assert ref.startswith("#/$defs/") and len(schema) == 1, schema
    return ref.removeprefix("#/$defs/")


def _target(schema: dict, defs: dict) -> dict:
    return defs[_ref_name(schema)]


@lru_cache(maxsize=1)
def _statements() -> _Statements:
    return _Statements()


def _schema_errors(instance: Any):
    """The schema's errors in ``instance``: the document with every statement list
    emptied, then each statement on its own (:class:`_Statements`; its path put back
    in front of its errors' paths), the statements of ``repeat``/``on`` bodies in
    turn.  Nesting is a queue, not recursion: jsonschema spends several Python frames
    on each level, so validating a body inside a body inside ... at once would exhaust
    the stack long before :data:`MAX_DEPTH`."""
    from collections import deque

    from flowspec.syntax.schema import validator

    work: deque[tuple[tuple, Any]] = deque()

    def cut(statements: Any, path: tuple) -> Any:
        """``[]`` for a list of statements, each queued with its path."""
        if not isinstance(statements, list):
            return statements
        work.extend(((*path, i), stmt) for i, stmt in enumerate(statements))
        return []

    shallow = instance
    if isinstance(instance, dict):
        shallow = dict(instance)
        for group in ("flows", "blocks"):
            items = instance.get(group)
            if isinstance(items, list):
                shallow[group] = [
                    {**item, "body": cut(item["body"], (group, i, "body"))}
                    if isinstance(item, dict) and "body" in item
                    else item
                    for i, item in enumerate(items)
                ]
    yield from validator().iter_errors(shallow)
    statements = _statements()
    #: the statements already found clean, by their data written canonically: specs
    #: repeat their statements (`{op: reverse, in: x}` after every coupling), and a
    #: statement's errors depend on nothing but its data
    clean: set[str] = set()
    while work:
        path, stmt = work.popleft()
        if isinstance(stmt, dict) and ("repeat" in stmt or "on" in stmt) and "body" in stmt:
            key = next(k for k, _ in statements.keys if k in stmt)
            if key in ("repeat", "on"):
                stmt = {**stmt, "body": cut(stmt["body"], (*path, "body"))}
        written = json.dumps(stmt, sort_keys=True)
        if written in clean:
            continue
        found = False
        for error in statements.errors(stmt):
            found = True
            error.path.extendleft(reversed(path))
            yield error
        if not found:
            clean.add(written)


class _SchemaErrors:
    """jsonschema errors → diagnostics at the YAML nodes they concern."""

    def __init__(self, reader: _Reader, root, instance) -> None:
        self.reader = reader
        self.root = root
        self.instance = instance
        self.out: list[Diagnostic] = []
        #: errors the checker finds too, said here with a hint about the YAML form
        self.advice: list[Diagnostic] = []

    def diagnostics(self) -> list[Diagnostic]:
        """The structure errors; errors in values are left to the checker (see
        :meth:`_deferred`)."""
        reported: set[tuple] = set()
        for error in _schema_errors(self.instance):
            path = tuple(error.absolute_path)
            self._misspelt_step_key(error, path)
            if self._deferred(error, path):
                continue
            if error.validator not in ("required", "additionalProperties"):
                if path in reported:  # the generic and the per-op schema agree: say it once
                    continue
                reported.add(path)
            self.structural(error, path)
        seen, unique = set(), []
        for d in sorted(self.out, key=lambda d: (d.span.start, d.span.end, d.code)):
            key = (d.code, d.span.start, d.span.end, d.message)
            if key not in seen:
                seen.add(key)
                unique.append(d)
        return unique

    def _deferred(self, error, path: tuple) -> bool:
        """Is this an error in a value the AST can hold, which the checker reports
        itself, exactly as for the same ``.flow`` program?  A registry step's options
        and arity, a ``require`` property and its bound, a device, a repeat count, a
        shape entry or an empty shape.  Deferring them keeps one set of diagnostics
        per program: the checker sees the whole spec, so it also reports what a stop
        here would hide (a tensor never consumed, a typo in another flow)."""
        step = self._registry_step(path)
        if step is not None and self._is_typed(error, path, step):
            return True
        if not path:
            return False
        parent = self._instance_at(path[:-1]) if len(path) > 1 else None
        value, last = error.instance, path[-1]
        number = isinstance(value, (int, float))
        if isinstance(parent, dict) and "require" in parent:
            if last == "require":
                return isinstance(value, str)
            return last == "max"  # any value: `.flow` writes `require lipschitz <= VALUE`
        if last == "on" and isinstance(parent, dict) and "body" in parent:
            return isinstance(value, str)  # the placement pass judges devices
        if isinstance(value, dict) and "require" in value:  # `max` given or missing
            return error.validator in ("not", "required")
        if last == "repeat" and isinstance(parent, dict) and "body" in parent:
            return number
        if last == "shape":
            return error.validator == "minItems"
        return isinstance(last, int) and len(path) > 1 and path[-2] == "shape" and number

    def _misspelt_step_key(self, error, path: tuple) -> None:
        """An unknown option one edit away from ``op``/``in``/``out`` is most likely a
        misspelt step key: the checker's E200, with the step key as the hint."""
        step = self._registry_step(path)
        if error.validator != "additionalProperties" or step is None or len(path) != len(step):
            return
        kind = error.instance["op"]
        for key in error.instance:
            target = key not in error.schema.get("properties", {}) and yaml_errors.step_key_slip(
                key
            )
            near = target and f"did you mean `{target}`?"
            if near:
                key_node = self.reader.pairs(self._located(path))[key][0]
                message = f"`{kind}` has no option `{key}`"
                self.advice.append(
                    Diagnostic("E200", message, self.reader.span(key_node), hint=near)
                )

    def _instance_at(self, path):
        value = self.instance
        for p in path:
            value = value[p]
        return value

    def _registry_step(self, path) -> tuple | None:
        """The path of the registry step an error lies in, if any."""
        from flowspec.kinds import REGISTRY

        for n in range(len(path), 1, -1):
            prefix = path[:n]
            if prefix[-2] != "body" or not isinstance(prefix[-1], int):
                continue
            stmt = self._instance_at(prefix)
            op = stmt.get("op") if isinstance(stmt, dict) else None
            if isinstance(op, str) and op in REGISTRY:
                return prefix
            return None
        return None

    def _located(self, path):
        """The node an error at ``path`` points at: a value left empty points at its key."""
        node, key_node = self.reader.node_at(self.root, path)
        empty = isinstance(node, pyyaml.ScalarNode) and node.tag == _CORE + "null"
        if empty and not node.value and key_node is not None:
            return key_node
        return node

    def _is_typed(self, error, path: tuple, step: tuple) -> bool:
        """Is this an error in the options (or the arity) of a registry block?"""
        from flowspec.syntax.schema import STEP_KEYS

        if len(path) == len(step):
            if error.validator == "additionalProperties":
                return True
            if error.validator == "required":
                return not set(error.validator_value) & set(STEP_KEYS)
            return False
        key = path[len(step)]
        if key == "in":  # the arity, once `in` is well formed
            tensors = self._instance_at((*step, "in"))
            tensors = tensors if isinstance(tensors, list) else [tensors]
            return bool(tensors) and all(_is_name(t) for t in tensors)
        return key not in STEP_KEYS

    def emit(self, code: str, message: str, node, hint: str | None = None) -> None:
        self.out.append(Diagnostic(code, message, self.reader.span(node), hint=hint))

    # -------------------------------------------------------------- structure

    def structural(self, error, path) -> None:
        node = self._located(path)
        schema, value, kind = error.schema, error.instance, error.validator
        if kind == "required":
            for key in error.validator_value:
                if isinstance(value, dict) and key not in value:
                    self.missing(path, node, schema, key)
            return
        if kind == "additionalProperties":
            allowed = list(schema.get("properties", {}))
            for key in value:
                if key not in allowed:
                    key_node = self.reader.pairs(node)[key][0]
                    self.emit(
                        "E100",
                        f"unknown key `{key}` in {_noun(schema)}",
                        key_node,
                        hint=did_you_mean(key, allowed)
                        or "expected " + ", ".join(f"`{k}`" for k in allowed),
                    )
            return
        if kind == "propertyNames":
            for key in value:
                bad = not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) or _is_keyword(key)
                if bad and not self.step_key_slip(node, value, key):
                    self.bad_name(key, self.reader.pairs(node)[key][0], "an option")
            return
        if kind == "anyOf" and _statements().is_statement(schema) and isinstance(value, dict):
            # a mapping with none of the statement keys
            from flowspec.syntax.schema import STATEMENT_KEYS

            for key in value:
                near = did_you_mean(key, STATEMENT_KEYS)
                if not near and yaml_errors.STEP_KEY_SLIPS.get(key) == "op":
                    near = "did you mean `op`?"
                if near:
                    self.emit(
                        "E100",
                        f"unknown statement key `{key}`",
                        self.reader.pairs(node)[key][0],
                        hint=near,
                    )
                    return
            self.emit(
                "E100",
                "not a statement: a statement has one of the keys "
                + ", ".join(f"`{k}`" for k in STATEMENT_KEYS),
                node,
            )
            return
        if kind == "const" and path == ("flowspec",):
            self.emit(
                "E201",
                f"unsupported format version {value!r}",
                node,
                hint="this flowspec reads `flowspec: 1`",
            )
            return
        if kind == "enum" and path and path[-1] == "require":
            from flowspec.kinds.words import REQUIREMENTS

            self.emit(
                "E200",
                f"unknown requirement `{value}`",
                node,
                hint=did_you_mean(str(value), REQUIREMENTS)
                or "requirements: " + ", ".join(f"`{r}`" for r in REQUIREMENTS),
            )
            return
        if kind == "not" and isinstance(value, dict) and "require" in value:
            from flowspec.kinds.words import REQUIREMENTS

            if not isinstance(value["require"], str) or value["require"] not in REQUIREMENTS:
                return  # the unknown property is the error
            self.emit(
                "E201",
                f"`require {value['require']}` takes no bound",
                self.reader.pairs(node)["max"][0],
                hint="remove `max`",
            )
            return
        if kind in ("minProperties", "maxProperties"):
            self.emit("E201", "an option parameter is one pair `{NAME: DEFAULT}`", node)
            return
        owner = self._instance_at(path) if path else None
        # a key of the mapping at `path` (a `propertyNames` error): `input:` in a step
        key_of_owner = isinstance(owner, dict) and isinstance(value, str) and value in owner
        if key_of_owner and self.step_key_slip(node, owner, value):
            return
        if isinstance(value, str) and self._wants_name(schema) and not _is_name(value):
            self.bad_name(value, node, "a name")
            return
        if not path:
            self.emit("E100", "a YAML spec is a mapping that starts with `flowspec: 1`", node)
            return
        words = yaml_errors.kind_words()
        word = yaml_errors.kind_as_key(value, words)
        if word is not None:  # `net: {mlp: {...}}` in a call of a user's block
            message, hint = yaml_errors.kind_as_key_message(word, words[word])
            self.emit("E201", message, self.reader.pairs(node)[word][0], hint=hint)
            return
        expected = schema.get("description") or self._expected(schema)
        code = "E100" if self._wants_structure(schema) else "E201"
        self.emit(code, f"{_field(path)} expects {expected}, got {describe(value)}", node)

    def missing(self, path, node, schema, key: str) -> None:
        if not path:
            self.emit(
                "E201",
                "a YAML spec needs `flowspec: 1`",
                node,
                hint="add `flowspec: 1` as its first line",
            )
            return
        value = self._instance_at(path)
        if key == "max" and isinstance(value, dict) and "require" in value:
            prop = value["require"]
            self.emit(
                "E201",
                f"`require {prop}` needs a bound",
                node,
                hint=f"write `{{require: {prop}, max: 2.0}}`",
            )
            return
        if isinstance(value, dict) and "op" in value:
            slips = [k for k in value if yaml_errors.step_key_slip(k) == key and k != key]
            for slip in slips:  # `input: x` for `in: x`: the slip is the error, not a gap
                self.step_key_slip(node, value, slip)
            if slips:
                return
        hint = None
        if key == "in":
            hint = "name the tensor(s) it consumes, such as `in: x`"
        self.emit("E201", f"{_noun(schema)} needs `{key}`", node, hint=hint)

    def step_key_slip(self, node, value, key: str) -> bool:
        """``input: x`` in a step: an unknown key, most likely ``in``."""
        target = yaml_errors.step_key_slip(key) if "op" in value else None
        if target is None:
            return False
        message, hint = yaml_errors.unknown_step_key(key, target, set(value))
        self.emit("E100", message, self.reader.pairs(node)[key][0], hint=hint)
        return True

    def bad_name(self, text: str, node, what: str) -> None:
        if _is_keyword(text):
            self.emit(
                "E100",
                f"`{text}` is a keyword and cannot be used as a name",
                node,
                hint=f"rename it, for example `{text}_`",
            )
        else:
            self.emit(
                "E100",
                f"`{text}` is not a valid name" + ("" if what == "a name" else f" for {what}"),
                node,
                hint="names are letters, digits and `_`, not starting with a digit",
            )

    @staticmethod
    def _wants_name(schema: dict) -> bool:
        """Does the schema ask for a name (or names), not for any string?"""
        from flowspec.syntax.schema import NAME_PATTERN

        if schema.get("pattern") == NAME_PATTERN:
            return True
        refs = [s.get("$ref", "") for s in schema.get("anyOf", ())]
        return bool(refs) and all(r.endswith(("/name", "/names")) or not r for r in refs)

    @staticmethod
    def _wants_structure(schema: dict) -> bool:
        return schema.get("type") == "object" or schema.get("items", {}).get("$ref", "").endswith(
            "/statement"
        )

    @staticmethod
    def _expected(schema: dict) -> str:
        t = schema.get("type")
        return {
            "object": "a mapping",
            "array": "a list",
            "string": "a string",
            "integer": "an integer",
            "number": "a number",
            "boolean": "true or false",
        }.get(t if isinstance(t, str) else "", "another value")
