"""The block reference (docs/blocks.md), generated from the registry alone.

Everything here is read from :mod:`flowspec.kinds`: each kind's signature and options
(types, defaults, ranges), its shape rule (in words, and run on the kind's examples),
its log-det and inverse classes (evaluated for every value of the options they depend
on), its Lipschitz bounds (as formulas where the entry gives them, evaluated at the
defaults), its math and its paper; then the enum words options take (nets, masks,
estimators, ...).  A kind added to the registry needs no edit here, only regeneration.
Torch-free, like the registry.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import Any

from flowspec.kinds import DEQUANTIZERS, KINDS, LATENTS, BlockKind
from flowspec.kinds.base import _same
from flowspec.kinds.options import (
    Bool,
    Choice,
    Enum,
    Float,
    Int,
    IntList,
    Option,
    OptionError,
    Str,
    Tensor,
    _show,
    resolved,
)

LOGDET_CLASSES = {
    "zero": "volume preserving: ladj = 0, no work",
    "analytic": "computed exactly in closed form, in the same pass as the map",
    "exact": "computed exactly, at a cost that grows with the number of features",
    "exact-bruteforce": "the full Jacobian and its log-determinant: exact, small inputs only",
    "stochastic": "an unbiased or truncated random estimate: training works, a single "
    "`log_prob` is noisy",
}
INVERSE_CLASSES = {
    "exact": "a rearrangement of the entries, exact to the bit",
    "analytic": "a closed form, exact up to rounding",
    "sequential": "exact, but one pass per feature (d passes)",
    "iterative": "found by an iteration (fixed point, root finding) to a tolerance",
    "integrated": "an ODE integrated backwards: exact only up to the solver's error",
}


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _range(lo: Any, hi: Any, lo_open: bool = False, hi_open: bool = False) -> str:
    def num(v: Any) -> str:
        return f"{v:,}" if isinstance(v, int) else f"{v:g}"

    if lo is not None and hi is not None:
        if isinstance(lo, int) and isinstance(hi, int) and not (lo_open or hi_open):
            return f"{num(lo)} … {num(hi)}"
        return f"in {'(' if lo_open else '['}{num(lo)}, {num(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{'>' if lo_open else '≥'} {num(lo)}"
    if hi is not None:
        return f"{'<' if hi_open else '≤'} {num(hi)}"
    return ""


# ------------------------------------------------------------------ option words


class Words:
    """The enum tables options take, each with a section of its own when its words have
    options or meanings to show; collected from the registry in first-use order."""

    def __init__(self) -> None:
        self.tables: list[tuple[Enum, str]] = []  # (table, heading)
        self.users: dict[int, list[str]] = {}
        self._headings: set[str] = set()

    def add(self, table: Enum, user: str, option: str) -> None:
        if not any(w for w in table.words.values()) and not table.docs:
            return
        if id(table) not in self.users:
            heading = f"Words: {table.what}"
            if heading in self._headings:
                heading += f" (`{option}=`)"
            self._headings.add(heading)
            self.tables.append((table, heading))
            self.users[id(table)] = []
        if user not in self.users[id(table)]:
            self.users[id(table)].append(user)

    def heading(self, table: Enum) -> str | None:
        return next((h for t, h in self.tables if t is table), None)

    def visit(self, options: tuple[Option, ...], user: str) -> None:
        for opt in options:
            if isinstance(opt.type, Enum):
                self.add(opt.type, user, opt.name)
                for word, sub in opt.type.words.items():
                    self.visit(sub, f"`{opt.name}={word}(...)`")


def collect_words() -> Words:
    words = Words()
    for kind in KINDS:
        words.visit(kind.options, f"[`{kind.name}`](#{slug(kind.name)})")
    for keyword, table in (("latent", LATENTS), ("dequantize", DEQUANTIZERS)):
        words.add(table, f"the `{keyword}` statement", keyword)
        for sub in table.words.values():
            words.visit(sub, f"`{keyword}`")
    return words


def describe_type(t: Any, words: Words) -> str:
    """What an option accepts, in words, with its bounds."""
    if isinstance(t, Bool):
        return "`true` or `false`"
    if isinstance(t, Int):
        r = _range(t.min, t.max)
        return f"an integer {r}" if r else "an integer"
    if isinstance(t, Float):
        r = _range(t.min, t.max, t.min_open, t.max_open)
        return f"a number {r}" if r else "a number"
    if isinstance(t, IntList):
        if t.max_len is None:
            length = f"{t.min_len} or more" if t.min_len else "any number of"
        else:
            length = _range(t.min_len or 0, t.max_len) if t.min_len else f"at most {t.max_len:,}"
        each = _range(t.item_min, t.item_max)
        out = f"a list of {length} {t.items}" + (f", each {each}" if each else "")
        return out + " (a single integer is a list of one)"
    if isinstance(t, Tensor):
        return "a tensor of the flow, read and not consumed"
    if isinstance(t, Str):
        return "a string"
    if isinstance(t, Enum):
        listed = ", ".join(f"`{w}`" for w in t.words)
        heading = words.heading(t)
        return f"one of {listed}" + (f" ([{t.what}](#{slug(heading)}))" if heading else "")
    return getattr(t, "name", "a value")


def _default(opt: Option) -> str:
    if opt.required:
        return "required"
    if opt.default is None:
        return "none"
    value = opt.default
    if isinstance(opt.type, Enum):
        value = opt.type.resolve(value if not isinstance(value, str) else Choice(value))
        return f"`{value}`"
    return f"`{_show(value)}`"


def option_line(opt: Option, words: Words) -> str:
    doc = f"; {opt.doc}" if opt.doc else ""
    return f"`{opt.name}`: {describe_type(opt.type, words)}; default {_default(opt)}{doc}"


# ------------------------------------------------------------------ kinds


def _defaults(kind: BlockKind) -> dict[str, Any]:
    """The resolved defaults; a required option is taken from the first example."""
    given: dict[str, Any] = {}
    for opt in kind.options:
        if opt.required:
            given[opt.name] = next(
                (ex.options[opt.name] for ex in kind.examples if opt.name in ex.options), None
            )
    opts = {o.name: None for o in kind.options}
    table = tuple(o for o in kind.options if not (o.required and given[o.name] is None))
    present = {k: v for k, v in given.items() if v is not None}
    opts.update(resolved(table, present, kind.name))
    return opts


def _placeholder(opt: Option) -> str:
    t = opt.type
    if isinstance(t, Tensor):
        return "TENSOR"
    if isinstance(t, IntList):
        return "[...]"
    if isinstance(t, Enum):
        word = next(iter(t.words))
        return f"{word}(...)" if t.words[word] else word
    return "..."


def signature(kind: BlockKind) -> str:
    """``x = coupling.affine(x, net=mlp, mask=half, ...)`` with the defaults."""
    ins = {1: "x", 2: "a, b"}.get(kind.inputs, "a, b, ...") if kind.inputs else "a, b, ..."
    try:
        n_out = kind.outputs(_defaults(kind))
    except Exception:  # an outputs rule that needs options the defaults lack
        n_out = 1
    outs = "x" if n_out == 1 else ", ".join("abcdefgh"[:n_out]) if n_out <= 8 else "a, b, ..."
    args = [ins]
    for opt in kind.options:
        if opt.required or opt.default is None:
            value = _placeholder(opt)
        elif isinstance(opt.type, Enum):
            value = opt.default if isinstance(opt.default, str) else str(opt.default)
        else:
            value = _show(opt.default)
        args.append(f"{opt.name}={value}")
    return f"{outs} = {kind.name}({', '.join(args)})"


def _variants(kind: BlockKind, opts: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``(description, options)`` for each value of each enum or boolean option."""
    out = []
    for opt in kind.options:
        values: list[tuple[str, Any]]
        if isinstance(opt.type, Enum):
            values = [(w, opt.type.resolve(Choice(w))) for w in opt.type.words]
        elif isinstance(opt.type, Bool):
            values = [(_show(v), v) for v in (False, True)]
        else:
            continue
        for shown, value in values:
            out.append((f"`{opt.name}={shown}`", {**opts, opt.name: value}))
    return out


def class_line(kind: BlockKind, rule: Any, opts: dict[str, Any]) -> str:
    """A class (``inverse``/``logdet``): fixed, or by the option values that change it."""
    if not callable(rule):
        return f"`{rule}`"
    try:
        default = rule(opts)
    except (KeyError, TypeError, AttributeError):
        return "depends on the options"
    others: dict[str, list[str]] = {}
    for shown, variant in _variants(kind, opts):
        try:
            value = rule(variant)
        except (KeyError, TypeError, AttributeError, OptionError):
            continue
        if value != default:
            others.setdefault(value, []).append(shown)
    parts = [f"`{default}` by default"]
    parts += [f"`{v}` with {' or '.join(w)}" for v, w in others.items()]
    return "; ".join(parts)


def _shapes(kind: BlockKind) -> list[str]:
    """The kind's examples through its shape rule: ``[6]`` → ``[1]``, ``[2]``, ``[3]``."""
    shown, seen = [], set()
    for ex in kind.examples:
        try:
            opts = {**_defaults(kind)}
            opts.update(resolved(kind.options, ex.options, kind.name))
            shapes = [*ex.shapes, *([ex.cond] if ex.cond else [])]
            result = kind.shape(opts, list(shapes))
        except Exception:  # an example the rule rejects is the harness's business
            continue
        left = ", ".join(f"`{list(s)}`" for s in ex.shapes)
        if ex.cond:
            left += f" with `cond` `{list(ex.cond)}`"
        text = f"{left} → {', '.join(f'`{list(s)}`' for s in result)}"
        if text not in seen:
            seen.add(text)
            shown.append(text)
    return shown[:4]


def shape_line(kind: BlockKind) -> str:
    rule = kind.shape_doc or ("output shape = input shape" if kind.shape is _same else "")
    examples = _shapes(kind)
    if examples:
        rule = (rule + "; " if rule else "") + "for example " + "; ".join(examples)
    return rule or "see the kind's examples"


def _bound(fn: Any, opts: dict[str, Any], shapes: list) -> str:
    try:
        b = fn(opts, shapes)
    except Exception:
        return "depends on the configuration"
    return f"≤ {b.value:.4g}" if b.value is not None else f"unbounded: {b.reason}"


def lipschitz_line(kind: BlockKind, opts: dict[str, Any]) -> str:
    shapes = list(kind.examples[0].shapes) if kind.examples else [(4,)]
    fwd = _bound(kind.lipschitz, opts, shapes)
    inv = _bound(kind.inverse_lipschitz, opts, shapes)
    evaluated = f"forward {fwd}; inverse {inv}"
    if not kind.bounds_doc:
        return evaluated
    if not kind.options:  # nothing to evaluate the formulas at
        return kind.bounds_doc
    return f"{kind.bounds_doc} (at the defaults: {evaluated})"


def sentence(text: str) -> str:
    """A summary as the start of a sentence: "split along an axis" → "Split along an
    axis", but a formula ("y = σ(x)") or a name ("i-ResNet") stays as it is."""
    first = text.split(" ", 1)[0]
    return text[:1].upper() + text[1:] if len(first) > 1 and first.isalpha() else text


def runtime_doc(kind: BlockKind) -> str:
    """The first paragraph of the runtime class's docstring, read without importing it
    (the runtime imports torch)."""
    module, _, name = kind.runtime.partition(":")
    root = Path(str(sys.modules["flowspec"].__file__)).parent.parent
    path = root.joinpath(*module.split(".")).with_suffix(".py")
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return ""
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            doc = ast.get_docstring(node) or ""
            return " ".join(doc.split("\n\n")[0].split()).replace("``", "`")
    return ""


def kind_entry(kind: BlockKind, words: Words | None = None, level: int = 3) -> str:
    """One kind's section, as docs/blocks.md and ``flowspec explain KIND`` show it."""
    words = words or collect_words()
    opts = _defaults(kind)
    consumes = "one or more" if kind.inputs is None else str(kind.inputs)
    out = [f"{'#' * level} `{kind.name}`", "", f"{sentence(kind.summary)}.", ""]
    out += ["```flow", signature(kind), "```", ""]
    math = kind.math or runtime_doc(kind)
    if math:
        out.append(f"- **Math:** {math}.")
    if kind.paper:
        out.append(f"- **Paper:** {kind.paper}.")
    out.append(f"- **Tensors:** consumes {consumes}.")
    out.append(f"- **Shape:** {shape_line(kind)}.")
    out.append(f"- **Log-det:** {class_line(kind, kind.logdet, opts)}.")
    out.append(f"- **Inverse:** {class_line(kind, kind.inverse, opts)}.")
    out.append(f"- **Lipschitz:** {lipschitz_line(kind, opts)}.")
    if kind.options:
        out.append("- **Options:**")
        out += [f"  - {option_line(o, words)}." for o in kind.options]
    else:
        out.append("- **Options:** none.")
    out.append(f"- **Runtime:** `{kind.runtime}`.")
    return "\n".join(out) + "\n"


def words_entry(table: Enum, heading: str, words: Words, level: int = 3) -> str:
    out = [f"{'#' * level} {heading}", ""]
    out += [f"Taken by {', '.join(words.users[id(table)])}.", ""]
    for word, options in table.words.items():
        doc = table.docs.get(word, "")
        out.append(f"- `{word}`" + (f": {doc}." if doc else "."))
        out += [f"  - {option_line(o, words)}." for o in options]
    return "\n".join(out) + "\n"


def _families() -> list[tuple[str, list[BlockKind]]]:
    """Kinds grouped by the registry module that declares them, in registry order, each
    group titled by the first line of its module's docstring."""
    owner: dict[str, str] = {}
    for name, module in sorted(sys.modules.items()):
        if name.startswith("flowspec.kinds.") and hasattr(module, "ENTRIES"):
            title = (module.__doc__ or name).strip().split("\n")[0].rstrip(".")
            title = title.split(":")[0] if ":" in title else title
            for kind in module.ENTRIES:
                owner[kind.name] = title
    groups: dict[str, list[BlockKind]] = {}
    for kind in KINDS:
        groups.setdefault(owner.get(kind.name, "Other kinds"), []).append(kind)
    return list(groups.items())


INTRO = """\
# Block reference

<!-- generated by `python -m flowspec.reference --write` from the block registry
(flowspec/kinds); tests/test_reference.py keeps this file equal to the generated text:
do not edit it by hand -->

Every block kind a flow can call, as the registry in `flowspec/kinds` declares it: the
call with its defaults, the math, the paper, the shape rule, the log-det and inverse
classes, the Lipschitz bounds the checker uses for `require lipschitz` and
`require inverse_lipschitz`, and every option with its type, range and default.
Shapes omit the batch axis; "features" are axis 0 of a tensor; ladj is log|det J| in
the normalizing direction (data → latent). `flowspec kinds` lists the kinds and
`flowspec explain KIND` prints one entry. The language itself is described in
[language.md](language.md), the diagnostic codes in [diagnostics.md](diagnostics.md).
"""


def _classes(title: str, table: dict[str, str], used: set[str]) -> str:
    rows = [f"| {title} | meaning |", "|---|---|"]
    rows += [f"| `{c}` | {table.get(c, '')} |" for c in [*table, *sorted(used - set(table))]]
    return "\n".join(rows) + "\n"


def blocks_markdown() -> str:
    """The whole of docs/blocks.md."""
    words = collect_words()
    families = _families()
    index = ["| kind | what it does | log-det | inverse |", "|---|---|---|---|"]
    logdets, inverses = set(), set()
    for _, kinds in families:
        for kind in kinds:
            opts = _defaults(kind)
            ld, inv = kind.logdet_class(opts), kind.inverse_class(opts)
            logdets.add(ld)
            inverses.add(inv)
            index.append(
                f"| [`{kind.name}`](#{slug(kind.name)}) | {kind.summary} | {ld} | {inv} |"
            )
    parts = [INTRO, "## Kinds\n", "\n".join(index) + "\n"]
    parts.append("Log-det and inverse classes (the index shows them at the defaults):\n")
    parts.append(_classes("log-det", LOGDET_CLASSES, logdets))
    parts.append(_classes("inverse", INVERSE_CLASSES, inverses))
    for title, kinds in families:
        parts.append(f"## {title}\n")
        parts += [kind_entry(k, words) for k in kinds]
    parts.append("## Option words\n")
    parts.append(
        "The words that enum options take, and the options of those words "
        "(`net=mlp(hidden=[64])`, `logdet=roulette(p=0.5)`).\n"
    )
    parts += [words_entry(t, h, words) for t, h in words.tables]
    return "\n".join(parts)
