"""Stage 1 of the YAML front end (:mod:`flowspec.syntax.yaml`): loading.

PyYAML's safe loader composes the node tree (never constructing objects), so every node
keeps its line and column.  A tag outside YAML's core schema (``!!python/...``,
``!custom``) is E100: nothing is executed.  Booleans are YAML 1.2's ``true``/``false``
only; ``yes``, ``no``, ``on`` and ``off`` are plain words (so a statement key ``on:``
stays the string "on").  Aliases may expand to at most :data:`MAX_NODES` nodes, nesting
is at most :data:`MAX_DEPTH` levels, and a syntax error is said in plain words
(:mod:`flowspec.syntax.yaml_errors`).
"""

from __future__ import annotations

import re
from typing import Any

import yaml as pyyaml

from flowspec.core.diagnostics import Diagnostic
from flowspec.core.names import code_point
from flowspec.core.spans import Source, Span
from flowspec.syntax import dsl, yaml_errors

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


class _Stop(Exception):
    """Give up on this document; the diagnostics are already recorded."""


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and bool(_NAME.match(value)) and not _is_keyword(value)


def _is_keyword(value: Any) -> bool:
    return isinstance(value, str) and value in dsl.KEYWORDS


# --------------------------------------------------------------------------- loading

#: what :func:`_compose_with_libyaml` returns when it leaves the document to PyYAML
_NOT_COMPOSED: Any = object()
#: a character other than printable ASCII and the line feed
_NOT_PLAIN_ASCII = re.compile(r"[^\n\x20-\x7e]")


def _compose_with_libyaml(text: str) -> Any:
    """The node tree PyYAML's safe ``compose`` makes, from libyaml's events.

    PyYAML's pure-Python scanner and parser were half the time of checking a large
    YAML spec; libyaml's are C, and produce the same events (same tags, values and
    marks, offsets in characters).  The tree is composed here by a loop, as PyYAML's
    composer does by recursion: PyYAML's C composer recurses in C, where no
    ``RecursionError`` bounds a hostile nesting, so only the events come from C.
    Anything unusual — no libyaml in this PyYAML, a character other than printable ASCII
    and line feeds, an empty value, a tag, a scanning or parsing error, an
    undefined or repeated anchor, a second document — returns :data:`_NOT_COMPOSED`,
    and PyYAML's own loader then reads the text and reports the problem in the words
    the error messages are written for (:mod:`flowspec.syntax.yaml_errors`).
    """
    if not getattr(pyyaml, "__with_libyaml__", False) or _NOT_PLAIN_ASCII.search(text):
        # the two disagree about tabs (libyaml takes `a\t` as the scalar `a`, PyYAML
        # refuses the tab), byte-order marks and columns after them: a spec means
        # what PyYAML says, so only printable ASCII and line feeds come this way
        return _NOT_COMPOSED
    try:
        return _EventComposer(pyyaml.CSafeLoader(text)).single_document()
    except (pyyaml.YAMLError, _Unusual):
        return _NOT_COMPOSED


class _Unusual(Exception):
    """An event sequence left to PyYAML's composer (see :func:`_compose_with_libyaml`)."""


class _EventComposer:
    """Events → nodes, with an explicit stack of the collections still open."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.anchors: dict[str, Any] = {}

    def single_document(self) -> Any:
        loader = self.loader
        try:
            loader.get_event()  # the stream's start
            if loader.check_event(pyyaml.StreamEndEvent):
                return None  # an empty stream
            loader.get_event()  # the document's start
            root = self.node()
            loader.get_event()  # the document's end
            if not loader.check_event(pyyaml.StreamEndEvent):
                raise _Unusual  # a second document: PyYAML says so
            return root
        finally:
            loader.dispose()

    def _new(self, event: Any) -> Any:
        """The node an event starts (for a collection, still empty)."""
        if isinstance(event, pyyaml.AliasEvent):
            if event.anchor not in self.anchors:
                raise _Unusual
            return self.anchors[event.anchor]
        if event.anchor is not None and event.anchor in self.anchors:
            raise _Unusual
        if event.tag is not None:
            raise _Unusual  # a tag, even `!`: PyYAML resolves `!` otherwise
        tag = event.tag
        if isinstance(event, pyyaml.ScalarEvent):
            if event.start_mark.index == event.end_mark.index:
                raise _Unusual  # an empty value: the two place it a column apart
            if tag is None or tag == "!":
                tag = self.loader.resolve(pyyaml.ScalarNode, event.value, event.implicit)
            node: Any = pyyaml.ScalarNode(
                tag, event.value, event.start_mark, event.end_mark, style=event.style or None
            )
        elif isinstance(event, pyyaml.SequenceStartEvent):
            if tag is None or tag == "!":
                tag = self.loader.resolve(pyyaml.SequenceNode, None, event.implicit)
            node = pyyaml.SequenceNode(
                tag, [], event.start_mark, None, flow_style=event.flow_style
            )
        elif isinstance(event, pyyaml.MappingStartEvent):
            if tag is None or tag == "!":
                tag = self.loader.resolve(pyyaml.MappingNode, None, event.implicit)
            node = pyyaml.MappingNode(tag, [], event.start_mark, None, flow_style=event.flow_style)
        else:
            raise _Unusual
        if event.anchor is not None:
            self.anchors[event.anchor] = node
        return node

    def node(self) -> Any:
        """The document's root node, its collections filled in event order."""
        get = self.loader.get_event
        #: the open collections, each with the key node waiting for its value
        stack: list[list[Any]] = []
        while True:
            event = get()
            if isinstance(event, (pyyaml.SequenceEndEvent, pyyaml.MappingEndEvent)):
                node = stack.pop()[0]
                node.end_mark = event.end_mark
            else:
                node = self._new(event)
                if not isinstance(event, pyyaml.AliasEvent) and isinstance(
                    event, (pyyaml.SequenceStartEvent, pyyaml.MappingStartEvent)
                ):
                    stack.append([node, None])
                    continue
            if not stack:
                return node
            parent = stack[-1]
            if isinstance(parent[0], pyyaml.SequenceNode):
                parent[0].value.append(node)
            elif parent[1] is None:
                parent[1] = node
            else:
                parent[0].value.append((parent[1], node))
                parent[1] = None


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
        # (as ``rstrip`` would, without copying a collection's text to find them)
        text = self.source.text
        while end > start and text[end - 1].isspace():
            end -= 1
        return self.source.span(start, end)

    def compose(self):
        text = self.source.text
        try:
            root = _compose_with_libyaml(text)
            if root is _NOT_COMPOSED:
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
