"""The YAML front end: YAML (LANGUAGE.md §7) → the same AST as ``.flow``.

Three stages, each stopping at its first problems, as a syntax error stops ``.flow``:

1. **Load** with PyYAML's safe loader, composing the node tree (never constructing
   objects), so every node keeps its line and column.  A tag outside YAML's core
   schema (``!!python/object/apply:...``, ``!custom``) is E100: nothing is executed.
   Booleans are YAML 1.2's ``true``/``false`` only; ``yes``, ``no``, ``on`` and
   ``off`` are plain words (so a statement key ``on:`` stays the string "on").
2. **Validate** against ``grammar/flow.schema.json`` (generated from the block
   registry).  Each error is mapped back to the YAML node at its path.  Only
   *structure* errors stop here — the YAML counterpart of a ``.flow`` syntax error:
   E100 (an unknown key, a statement that is no statement, a keyword used as a name)
   or E201 (a missing key, a wrong type where the AST has no room for the value).
   Errors in values the AST can hold (a registry block's options and arity, a
   ``require`` property or bound, a repeat count, a shape entry) are left to the
   checker, which reports them exactly as for the same ``.flow`` program.
3. **Lower** to the AST.  A string where a value belongs is read with the ``.flow``
   expression grammar: ``x`` is a name (tensor, constant or enum word), ``"2*h + 1"``
   an integer expression, ``'"cuda:0"'`` (a ``.flow`` string, quotes included) a
   string.  A negative YAML number lowers to ``Neg`` of a positive literal, as ``-1``
   parses in ``.flow``.  An unknown ``op`` is the checker's E200, as in ``.flow``.

Everything after the AST (lowering, the passes, codegen) is shared with ``.flow``, so a
shape or consumption error points at the YAML node through the AST's spans.
"""

from __future__ import annotations

import math
import re
from dataclasses import fields, is_dataclass, replace
from functools import lru_cache
from typing import Any

import yaml as pyyaml

from flowspec.core.diagnostics import Diagnostic
from flowspec.core.names import code_point, did_you_mean
from flowspec.core.spans import Source, Span
from flowspec.kinds.options import describe
from flowspec.syntax import ast, dsl, yaml_errors
from flowspec.syntax.limits import (
    DEFAULT_LIMITS,
    Limits,
    check_bytes,
    too_many_statements,
    yaml_statement_over,
)

_CORE = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null", "timestamp")}
_COLLECTION_TAGS = {_CORE + "seq", _CORE + "map"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_STRING = re.compile(r'"([^"\\\n]|\\.)*"\Z')
#: the most nodes a document may expand to (aliases can multiply a small file)
MAX_NODES = 200_000
#: the deepest nesting accepted: a YAML level per list or net, two per repeat (its
#: mapping and its body), so the YAML of every `.flow` spec within that syntax's limit
#: (dsl.MAX_DEPTH levels of its parse tree, at least one per repeat, list or net) fits
MAX_DEPTH = 2 * dsl.MAX_DEPTH + 4
#: the longest expression string accepted
MAX_EXPRESSION = 2_000


class _Stop(Exception):
    """Give up on this document; the diagnostics are already recorded."""


def parse(
    source: Source, limits: Limits = DEFAULT_LIMITS
) -> tuple[ast.Program | None, list[Diagnostic]]:
    """Parse a YAML spec; on a structure error return ``(None, diagnostics)``.  With a
    program, the diagnostics are errors the checker reports too (deduplicated), with
    hints about the YAML form.  The byte limit is checked before loading, the statement
    limit right after."""
    too_large = check_bytes(source, limits)
    if too_large is not None:
        return None, [too_large]
    reader = _Reader(source)
    try:
        root = reader.compose()
        instance = reader.data(root)
    except _Stop:
        return None, reader.diagnostics
    if reader.diagnostics:
        return None, reader.diagnostics
    over = yaml_statement_over(root, limits.max_statements)
    if over is not None:
        return None, [too_many_statements(source, limits, reader.span(over).start)]
    schema = _SchemaErrors(reader, root, instance)
    diags = schema.diagnostics()
    if diags:
        return None, diags
    lowerer = _Lowerer(reader)
    try:
        program = lowerer.program(root)
    except _Stop:
        return None, _by_position(lowerer.errors + lowerer.diagnostics)
    if lowerer.diagnostics:
        return None, _by_position(lowerer.errors + lowerer.diagnostics)
    # the checker reports the advice too; said first, it keeps its YAML hints
    return program, _by_position(schema.advice + lowerer.errors)


def _by_position(diags: list[Diagnostic]) -> list[Diagnostic]:
    return sorted(diags, key=lambda d: (d.span.start, d.span.end))


# --------------------------------------------------------------------------- loading


class _Reader:
    """The node tree with positions, and the plain data the schema validates."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.diagnostics: list[Diagnostic] = []
        #: id(mapping node) → {key: (key node, value node)}
        self.maps: dict[int, dict[str, tuple[Any, Any]]] = {}
        self._visited = 0
        self._own: dict[int, set[int]] = {}
        self._constructor = pyyaml.SafeLoader("")

    def error(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code, message, span, hint=hint))

    def span(self, node) -> Span:
        start, end = node.start_mark.index, node.end_mark.index
        # a block collection ends where the next token starts: drop the trailing blanks
        end = start + len(self.source.text[start:end].rstrip())
        return self.source.span(start, max(end, start))

    def compose(self):
        text = self.source.text
        try:
            root = pyyaml.compose(text, Loader=pyyaml.SafeLoader)
        except pyyaml.MarkedYAMLError as e:
            self.diagnostics.append(yaml_errors.syntax_error(self.source, e))
            raise _Stop from None
        except pyyaml.reader.ReaderError as e:
            self.error(
                "E100",
                f"YAML cannot contain the character {code_point(chr(e.character))}",
                self._point(e.position),
            )
            raise _Stop from None
        except RecursionError:
            self.error(
                "E100",
                f"the YAML document nests too deeply (more than {MAX_DEPTH} levels)",
                self._point(0),
            )
            raise _Stop from None
        if root is None:
            self.error(
                "E201",
                "the YAML spec is empty",
                self._point(0),
                hint="start it with `flowspec: 1`, then `flows:`",
            )
            raise _Stop
        return root

    def _point(self, offset: int) -> Span:
        text = self.source.text
        offset = max(0, min(offset, len(text)))
        return self.source.span(offset, min(offset + 1, len(text)))

    # ---------------------------------------------------------------- data

    def data(self, node, depth: int = 0, path: frozenset[int] = frozenset()):
        """The plain data of a node, checking tags, keys, aliases and size."""
        self._visited += 1
        if self._visited > MAX_NODES:
            self.error(
                "E100",
                f"the YAML document expands to more than {MAX_NODES} nodes",
                self.span(node),
                hint="aliases (`*name`) repeat what they point at; write the spec out",
            )
            raise _Stop
        if depth > MAX_DEPTH:
            self.error(
                "E100",
                f"the YAML document nests too deeply (more than {MAX_DEPTH} levels)",
                self.span(node),
            )
            raise _Stop
        if id(node) in path:
            self.error("E100", "an alias refers to a node that contains it", self.span(node))
            raise _Stop
        inner = path | {id(node)}
        if isinstance(node, pyyaml.ScalarNode):
            return self.scalar(node)
        if node.tag not in _COLLECTION_TAGS:
            self._bad_tag(node)
            return None
        if isinstance(node, pyyaml.SequenceNode):
            return [self.data(item, depth + 1, inner) for item in node.value]
        if id(node) not in self._own:  # the keys written here, before merges add theirs
            self._own[id(node)] = {id(k) for k, _ in node.value if k.tag != _CORE + "merge"}
        own = self._own[id(node)]
        try:
            self._constructor.flatten_mapping(node)  # `<<: *defaults` merge keys
        except pyyaml.constructor.ConstructorError as e:
            mark = e.problem_mark or node.start_mark
            self.error("E100", f"bad merge key: {e.problem}", self._point(mark.index))
            return None
        pairs: dict[str, tuple[Any, Any]] = {}
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, pyyaml.ScalarNode) or key_node.tag not in (
                _ALLOWED_TAGS | {_CORE + "bool"}
            ):
                self.error("E100", "a key must be a plain word", self.span(key_node))
                continue
            key = key_node.value  # the text as written: `on` is the key "on"
            if key in pairs and (id(key_node) not in own or id(pairs[key][0]) not in own):
                del pairs[key]  # a merged key gives way to a later one, as in YAML
                del out[key]
            if key in pairs:
                self.error(
                    "E100",
                    f"duplicate key `{key}`",
                    self.span(key_node),
                    hint="each key appears once in a mapping",
                )
                continue
            pairs[key] = (key_node, value_node)
            out[key] = self.data(value_node, depth + 1, inner)
        self.maps[id(node)] = pairs
        return out

    def _bad_tag(self, node) -> None:
        tag = node.tag.replace(_CORE, "!!")
        self.error(
            "E100",
            f"YAML tag `{tag}` is not allowed",
            self.span(node),
            hint="flowspec reads plain YAML (safe_load): no tags, nothing is constructed "
            "or executed",
        )

    def scalar(self, node):
        """A scalar's value: YAML's core schema, with YAML 1.2 booleans."""
        tag = node.tag
        if tag not in _ALLOWED_TAGS and tag != _CORE + "bool":
            self._bad_tag(node)
            return None
        try:
            if tag == _CORE + "int":
                return self._constructor.construct_yaml_int(node)
            if tag == _CORE + "float":
                return self._constructor.construct_yaml_float(node)
        except (ValueError, TypeError):
            self.error("E100", f"`{node.value}` is not a number", self.span(node))
            return None
        if tag == _CORE + "bool":
            word = node.value.lower()
            return {"true": True, "false": False}.get(word, node.value)
        if tag == _CORE + "null":
            return None
        return node.value

    def pairs(self, node) -> dict[str, tuple[Any, Any]]:
        return self.maps.get(id(node), {})

    def get(self, node, key: str):
        pair = self.pairs(node).get(key)
        return None if pair is None else pair[1]

    def node_at(self, root, path) -> tuple[Any, Any]:
        """The node at a schema error's path, and the key node of its last step."""
        node, key_node = root, None
        for step in path:
            if isinstance(node, pyyaml.MappingNode):
                pair = self.pairs(node).get(step)
                if pair is None:
                    break
                key_node, node = pair
            elif isinstance(node, pyyaml.SequenceNode) and isinstance(step, int):
                node, key_node = node.value[step], None
            else:
                break
        return node, key_node


# --------------------------------------------------------------------- schema errors


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


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and bool(_NAME.match(value)) and not _is_keyword(value)


def _is_keyword(value: Any) -> bool:
    from flowspec.syntax.dsl import KEYWORDS

    return isinstance(value, str) and value in KEYWORDS


@lru_cache(maxsize=1)
def _body_validator():
    """A validator of one statement body (``#/$defs/body`` of the schema)."""
    from jsonschema import Draft202012Validator

    from flowspec.syntax.schema import load_schema

    schema = load_schema()
    return Draft202012Validator({"$ref": "#/$defs/body", "$defs": schema["$defs"]})


def _schema_errors(instance: Any):
    """The schema's errors in ``instance``, each ``repeat``/``on`` body validated on its
    own (its path put back in front of its errors' paths): jsonschema spends several
    Python frames on each level, so validating a body inside a body inside ... at once
    would exhaust the stack long before :data:`MAX_DEPTH`."""
    from flowspec.syntax.schema import STATEMENT_KEYS, validator

    def cut(statements: Any, path: tuple) -> Any:
        """The statements with every nested body left empty (and queued)."""
        if not isinstance(statements, list):
            return statements
        out = []
        for i, stmt in enumerate(statements):
            key = next((k for k in STATEMENT_KEYS if isinstance(stmt, dict) and k in stmt), None)
            if key in ("repeat", "on") and isinstance(stmt.get("body"), list):
                work.append(((*path, i, "body"), stmt["body"]))
                stmt = {**stmt, "body": []}
            out.append(stmt)
        return out

    work: list[tuple[tuple, Any]] = []
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
    while work:
        path, body = work.pop()
        for error in _body_validator().iter_errors(cut(body, path)):
            error.path.extendleft(reversed(path))
            yield error


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
        if kind == "anyOf" and schema.get("allOf") and isinstance(value, dict):
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


# -------------------------------------------------------------------------- lowering


def _options_of(kind: str) -> dict[str, Any] | None:
    """A registry block's options (name → option type), or None for other kinds."""
    from flowspec.kinds import REGISTRY

    entry = REGISTRY.get(kind)
    return None if entry is None else {o.name: o.type for o in entry.options}


def _relocate(node, move):
    """A copy of an AST with every span passed through ``move``."""
    if isinstance(node, tuple):
        return tuple(_relocate(n, move) for n in node)
    if isinstance(node, Span):
        return move(node)
    if is_dataclass(node):
        return replace(
            node, **{f.name: _relocate(getattr(node, f.name), move) for f in fields(node)}
        )
    return node


def _empty(node) -> bool:
    """A ``key:`` with nothing written after it."""
    return isinstance(node, pyyaml.ScalarNode) and node.tag == _CORE + "null" and not node.value


class _Lowerer:
    """YAML nodes (already validated) → AST nodes with the YAML spans."""

    def __init__(self, reader: _Reader) -> None:
        self.reader = reader
        self.source = reader.source
        self.diagnostics: list[Diagnostic] = []
        #: errors that do not stop lowering (a net written `{mlp: {...}}`), so the
        #: checker still reports what is wrong inside
        self.errors: list[Diagnostic] = []

    def span(self, node) -> Span:
        return self.reader.span(node)

    def pair_span(self, key_node, value_node) -> Span:
        return self.span(key_node).to(self.span(value_node))

    def get(self, node, key: str):
        return self.reader.get(node, key)

    def name(self, node, text: str | None = None, dotted: bool = False) -> ast.Name:
        text = node.value if text is None else text
        # the schema's `$` also matches before a final newline, so check again
        if not all(_is_name(part) for part in (text.split(".") if dotted else [text])):
            self.diagnostics.append(
                Diagnostic("E100", f"`{text}` is not a valid name", self.span(node))
            )
        return ast.Name(text, self.span(node))

    def names(self, node) -> tuple[ast.Name, ...]:
        if isinstance(node, pyyaml.SequenceNode):
            return tuple(self.name(n) for n in node.value)
        return (self.name(node),)

    # ------------------------------------------------------------- program

    def program(self, root) -> ast.Program:
        items: list = []
        blocks = self.get(root, "blocks")
        for key in self.reader.pairs(root):  # keep the order the file gives
            if key == "blocks":
                items.extend(self.block(n) for n in blocks.value)
            elif key == "flows":
                items.extend(self.flow(n) for n in self.get(root, "flows").value)
        return ast.Program(tuple(items), self.span(root))

    def flow(self, node) -> ast.Flow:
        body: list = []
        pairs = self.reader.pairs(node)
        if "input" in pairs:
            key_node, value = pairs["input"]
            shape = self.get(value, "shape")
            body.append(
                ast.InputStmt(
                    self.name(self.get(value, "name")),
                    tuple(self.value(n) for n in shape.value),
                    self.pair_span(key_node, value),
                )
            )
        for key, stmt in (("latent", ast.LatentStmt), ("dequantize", ast.DequantizeStmt)):
            if key in pairs:
                key_node, value = pairs[key]
                body.append(stmt(self.value(value), self.pair_span(key_node, value)))
        if "body" in pairs:
            body.extend(self.body(pairs["body"][1]))
        if "output" in pairs:
            key_node, value = pairs["output"]
            body.append(ast.OutputStmt(self.names(value), self.pair_span(key_node, value)))
        return ast.Flow(self.name(self.get(node, "name")), tuple(body), self.span(node))

    def block(self, node) -> ast.BlockDef:
        params = []
        for p in getattr(self.get(node, "params"), "value", ()):
            if isinstance(p, pyyaml.ScalarNode):
                params.append(ast.Param(self.name(p), None, self.span(p)))
            else:
                ((key, (key_node, value)),) = self.reader.pairs(p).items()
                params.append(
                    ast.Param(
                        self.name(key_node, key),
                        self.value(value),
                        self.pair_span(key_node, value),
                    )
                )
        body = list(self.body(self.get(node, "body")))
        pairs = self.reader.pairs(node)
        if "return" in pairs:
            key_node, value = pairs["return"]
            body.append(ast.ReturnStmt(self.names(value), self.pair_span(key_node, value)))
        return ast.BlockDef(
            self.name(self.get(node, "name")), tuple(params), tuple(body), self.span(node)
        )

    def body(self, node) -> tuple:
        if node is None:
            return ()
        return tuple(self.statement(n) for n in node.value)

    # ---------------------------------------------------------- statements

    def statement(self, node):
        from flowspec.syntax.schema import STATEMENT_KEYS

        pairs = self.reader.pairs(node)
        key = next(k for k in STATEMENT_KEYS if k in pairs)
        value = pairs[key][1]
        span = self.span(node)
        if key == "op":
            return self.step(node)
        if key == "let":
            return ast.LetStmt(self.name(value), self.value(self.get(node, "value")), span)
        if key == "repeat":
            index = self.get(node, "as")
            return ast.RepeatStmt(
                self.value(value),
                None if index is None else self.name(index),
                self.body(self.get(node, "body")),
                span,
            )
        if key == "on":
            device = ast.String(str(value.value), self.span(value))
            return ast.OnStmt(device, self.body(self.get(node, "body")), span)
        if key == "input":
            shape = self.get(node, "shape")
            return ast.InputStmt(self.name(value), tuple(self.value(n) for n in shape.value), span)
        if key == "latent":
            return ast.LatentStmt(self.value(value), span)
        if key == "dequantize":
            return ast.DequantizeStmt(self.value(value), span)
        if key == "require":
            bound = self.get(node, "max")
            return ast.RequireStmt(
                self.name(value), None if bound is None else self.value(bound), span
            )
        if key == "output":
            return ast.OutputStmt(self.names(value), span)
        return ast.ReturnStmt(self.names(value), span)

    def step(self, node) -> ast.Assign:
        from flowspec.syntax.schema import STEP_KEYS

        # an unknown kind is the checker's E200
        kind = self.name(self.get(node, "op"), dotted=True)
        inputs = self.names(self.get(node, "in"))
        args = [ast.Arg(None, ast.Ref(n.id, n.span), n.span) for n in inputs]
        args += self.keyword_args(node, skip=STEP_KEYS, table=_options_of(kind.id))
        out = self.get(node, "out")
        targets = inputs if out is None else self.names(out)
        span = self.span(node)
        return ast.Assign(targets, ast.Call(kind, tuple(args), span), span)

    # --------------------------------------------------------------- values

    def keyword_args(self, node, skip, table=None) -> list[ast.Arg]:
        """``key=value`` arguments from a mapping's pairs, except the keys in ``skip``;
        ``table`` (name → option type) says what each option expects, for messages."""
        table = table or {}
        return [
            ast.Arg(
                ast.Name(key, self.span(key_node)),
                self.value(value, key_node, table.get(key)),
                self.pair_span(key_node, value),
            )
            for key, (key_node, value) in self.reader.pairs(node).items()
            if key not in skip
        ]

    def value(self, node, key_node=None, otype=None) -> ast.Value:
        span = self.span(node)
        if isinstance(node, pyyaml.SequenceNode):
            return ast.ListValue(tuple(self.value(n) for n in node.value), span)
        if isinstance(node, pyyaml.MappingNode):
            words = getattr(otype, "words", None)
            pairs = {k: v for k, (_, v) in self.reader.pairs(node).items()}
            word = yaml_errors.kind_as_key(pairs, words or ())
            if word is not None:  # `net: {mlp: {hidden: [64]}}`: say so, read it anyway
                word_node, inner = self.reader.pairs(node)[word]
                message, hint = yaml_errors.kind_as_key_message(word, otype.what)
                self.errors.append(Diagnostic("E201", message, self.span(word_node), hint=hint))
                table = {o.name: o.type for o in words[word]}
                args = self.keyword_args(inner, skip=(), table=table) if inner.value else []
                return ast.Call(ast.Name(word, self.span(word_node)), tuple(args), span)
            kind = self.get(node, "kind")
            word = self.reader.scalar(kind) if isinstance(kind, pyyaml.ScalarNode) else None
            table = None
            if words is not None and isinstance(word, str) and word in words:
                table = {o.name: o.type for o in words[word]}
            args = self.keyword_args(node, skip=("kind",), table=table)
            if not isinstance(kind, pyyaml.ScalarNode) or not isinstance(
                self.reader.scalar(kind), str
            ):  # a mapping without `kind` has no AST form
                self.fail("E201", "a net or estimator needs `kind`", node)
            return ast.Call(self.name(kind, dotted=True), tuple(args), span)
        value = self.reader.scalar(node)
        if isinstance(value, bool):
            return ast.Bool(value, span)
        if isinstance(value, int):
            if value < 0:
                return ast.Neg(ast.Int(-value, span), span)
            return ast.Int(value, span)
        if isinstance(value, float):
            if not math.isfinite(value):
                self.fail("E201", f"`{node.value}`: numbers must be finite", node)
            if math.copysign(1.0, value) < 0:
                return ast.Neg(ast.Float(-value, span), span)
            return ast.Float(value, span)
        if value is None:  # `key:` left empty points at the key
            where = key_node if key_node is not None and _empty(node) else node
            self.fail("E201", "expected a value, got nothing (null)", where)
        return self.text_value(str(value), node, key_node, otype)

    def fail(self, code: str, message: str, node, hint: str | None = None):
        self.diagnostics.append(Diagnostic(code, message, self.span(node), hint=hint))
        raise _Stop

    def text_value(self, text: str, node, key_node=None, otype=None) -> ast.Value:
        """A string where a value belongs, read as ``.flow`` would read it."""
        from flowspec.syntax.build import _unquote, build
        from flowspec.syntax.dsl import KEYWORDS, syntax_error

        span = self.span(node)
        if _NAME.match(text) and text not in KEYWORDS:
            return ast.Ref(text, self._inner(node, text, 0, len(text)) or span)
        if text.startswith('"'):
            if not _STRING.match(text):
                self.fail(
                    "E100",
                    f'`{text}` is not a string: it starts with `"` but does not end with one',
                    node,
                    hint="a string value is written with its .flow quotes: '\"cuda:0\"'",
                )
            return ast.String(_unquote(text), span)
        if not text.strip():
            self.fail("E201", "expected a value, got an empty string", node)
        if len(text) > MAX_EXPRESSION:
            self.fail("E100", f"expression longer than {MAX_EXPRESSION} characters", node)
        from lark.exceptions import UnexpectedInput

        inner = Source(self.source.path, text)
        base = self._base(node, text)

        def move(s: Span) -> Span:
            if base is None:
                return span
            return self.source.span(base + s.start, base + s.end)

        try:
            tree = dsl.parser().parse(text, start="expr")
            value, too_deep = build(tree, inner, dsl.MAX_DEPTH)
            if too_deep is not None:
                self.fail("E100", "the expression nests too deeply", node)
        except UnexpectedInput as err:
            if key_node is not None and yaml_errors.looks_like_a_list(text):
                # `hidden: "64, 64"`: a list written as a string, said at the option
                message, hint = yaml_errors.list_in_a_string(
                    key_node.value, text, getattr(otype, "name", None)
                )
                self.diagnostics.append(
                    Diagnostic("E201", message, self.pair_span(key_node, node), hint=hint)
                )
                raise _Stop from None
            d = syntax_error(inner, err)
            message = d.message.replace("end of file", "end of the value")
            hint = d.hint and d.hint.replace("end of file", "the end of the value")
            self.diagnostics.append(
                Diagnostic(
                    "E100",
                    f"cannot read `{text}` as a value: {message}",
                    move(d.span),
                    hint=hint
                    or 'a value here is a name, an integer expression such as "2*h + 1", '
                    "or a string in .flow quotes such as '\"cuda:0\"'",
                )
            )
            raise _Stop from None
        except RecursionError:
            self.fail("E100", "the expression nests too deeply", node)
        return _relocate(value, move)

    def _base(self, node, text: str) -> int | None:
        """Where a scalar's text starts in the file, if it is written as it reads."""
        start, end = node.start_mark.index, node.end_mark.index
        raw = self.source.text[start:end]
        if raw == text:
            return start
        if len(raw) >= 2 and raw[0] in "'\"" and raw[1:-1] == text:
            return start + 1
        return None

    def _inner(self, node, text: str, start: int, end: int) -> Span | None:
        base = self._base(node, text)
        return None if base is None else self.source.span(base + start, base + end)
