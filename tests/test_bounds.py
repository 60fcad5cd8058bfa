"""Issue 8, findings 3–5: integer options refuse floats, every size has an upper bound,
and a module that cannot be allocated is a SpecError, never a raw torch error.

Each reproducer of the issue is here with its minimal input, by code, line and column;
``flowspec summary`` runs as a process under an address-space limit, so a test fails
if it ever allocates the module it only counts.
"""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest
import torch
from conftest import ROOT
from harness import cases, resolve_example, runtime_class

import flowspec
from flowspec import build
from flowspec.core.diagnostics import Diagnostic
from flowspec.core.spans import Source
from flowspec.driver import Compilation
from flowspec.kinds import DEQUANTIZERS, KINDS, LATENTS, limits, masks
from flowspec.kinds.options import Enum, Int, IntList
from flowspec.syntax import dsl
from flowspec.syntax.to_yaml import to_yaml

RESIDUAL = "x = residual(x, net=mlp(hidden=[8], act=elu), {})"
BIG = 1_000_000_000_000


def spec(body: str, shape: str = "[4]", head: str = "") -> str:
    return f"flow f {{\n    input x: {shape}\n{head}    {body}\n    output x\n}}\n"


def where(text: str, needle: str) -> tuple[int, int]:
    """(line, column) of the first ``needle`` in ``text``, 1-based."""
    start = text.index(needle)
    line = text.count("\n", 0, start) + 1
    return line, start - (text.rfind("\n", 0, start) + 1) + 1


def only_error(text: str, path: str = "spec.flow") -> Diagnostic:
    diags = Compilation(Source(path, text)).diagnostics
    errors = [d for d in diags if d.is_error]
    assert len(errors) == 1, [(d.code, d.message) for d in diags]
    return errors[0]


#: (body, input shape, the text the diagnostic points at, a part of its message)
FLOATS = [
    (
        "x = coupling.affine(x, net=mlp(hidden=[1e308]))",
        "[4]",
        "hidden=[1e308]",
        "`hidden` list item: expected an integer, got the float 1e+308",
    ),
    (
        "x = coupling.affine(x, net=mlp(hidden=[1e3]))",
        "[4]",
        "hidden=[1e3]",
        "got the float 1000.0",
    ),
    (
        "x = coupling.affine(x, net=mlp(hidden=64.0))",
        "[4]",
        "hidden=64.0",
        "got the float 64.0",
    ),
    (
        "x = squeeze(x, factor=2.0)",
        "[1, 4, 4]",
        "2.0",
        "`factor` expected an integer, got the float",
    ),
    (
        "x = coupling.spline(x, net=mlp, bins=8.0)",
        "[4]",
        "8.0",
        "`bins` expected an integer, got the float",
    ),
    (
        "a, b = split(x, sizes=[2e0, 2e0])\n    x = concat(a, b)",
        "[4]",
        "[2e0, 2e0]",
        "`sizes` list item: expected an integer, got the float 2.0",
    ),
    ("x = shuffle(x, seed=1e308)", "[4]", "1e308", "`seed` expected an integer, got the float"),
    (
        "x = autoregressive.affine(x, order=random(seed=3.0))",
        "[4]",
        "seed=3.0",
        "`seed` expected an integer",
    ),
    (
        RESIDUAL.format("trace=hutchinson(samples=2.0)"),
        "[4]",
        "samples=2.0",
        "`samples` expected an integer",
    ),
    (
        RESIDUAL.format("inverse=fixedpoint(max_iter=1e3)"),
        "[4]",
        "max_iter=1e3",
        "`max_iter` expected an integer",
    ),
    (
        RESIDUAL.format("logdet=series(terms=5.0)"),
        "[4]",
        "terms=5.0",
        "`terms` expected an integer",
    ),
    (RESIDUAL.format("power_iters=5.0"), "[4]", "5.0", "`power_iters` expected an integer"),
    (
        "x = coupling.affine(x, net=conv(hidden=8, kernel=3.0), mask=checkerboard)",
        "[2, 4, 4]",
        "kernel=3.0",
        "`kernel` expected an integer",
    ),
    ("x = reverse(x)", "[4.0]", "4.0", "a shape entry must be a positive integer, got the float"),
]

#: the same, for sizes over their bound
TOO_LARGE = [
    (
        f"x = coupling.affine(x, net=mlp(hidden=[{BIG}]))",
        "[4]",
        f"hidden=[{BIG}]",
        f"`hidden` width {BIG} is too large: at most {limits.MAX_WIDTH}",
    ),
    (
        f"x = coupling.affine(x, net=mlp(hidden={[8] * 65}))",
        "[4]",
        "hidden=[8, 8",
        f"`hidden` has too many widths: 65, at most {limits.MAX_LAYERS}",
    ),
    (
        f"x = autoregressive.affine(x, hidden=[{BIG}])",
        "[4]",
        f"[{BIG}]",
        f"`hidden` width {BIG} is too large",
    ),
    (
        f"x = coupling.affine(x, net=conv(hidden=8, kernel={BIG}), mask=checkerboard)",
        "[2, 4, 4]",
        f"kernel={BIG}",
        f"`kernel` {BIG} is too large: at most {limits.MAX_KERNEL}",
    ),
    (
        "x = coupling.affine(x, net=conv(hidden=8, depth=65), mask=checkerboard)",
        "[2, 4, 4]",
        "depth=65",
        f"`depth` 65 is too large: at most {limits.MAX_LAYERS}",
    ),
    (
        f"x = coupling.affine(x, net=resnet(hidden={BIG}), mask=checkerboard)",
        "[2, 4, 4]",
        f"hidden={BIG}",
        f"`hidden` {BIG} is too large: at most {limits.MAX_WIDTH}",
    ),
    (
        RESIDUAL.format(f"trace=hutchinson(samples={BIG})"),
        "[4]",
        f"samples={BIG}",
        f"`samples` {BIG} is too large: at most {limits.MAX_SAMPLES}",
    ),
    (  # the run-time hang of finding 5
        RESIDUAL.format(f"power_iters={BIG}"),
        "[4]",
        str(BIG),
        f"`power_iters` {BIG} is too large: at most {limits.MAX_POWER_ITERS}",
    ),
    (
        RESIDUAL.format(f"inverse=fixedpoint(max_iter={BIG})"),
        "[4]",
        f"max_iter={BIG}",
        f"`max_iter` {BIG} is too large: at most {limits.MAX_FIXEDPOINT_ITER}",
    ),
    (
        RESIDUAL.format("logdet=roulette(p=0.000001)"),
        "[4]",
        "p=0.000001",
        f"`p` must be >= {limits.MIN_ROULETTE_P:g}",
    ),
    (f"x = shuffle(x, seed={2**63})", "[4]", str(2**63), f"`seed` {2**63} is too large"),
    (f"x = squeeze(x, factor={BIG})", "[1, 4, 4]", str(BIG), f"`factor` {BIG} is too large"),
    (
        f"x = reshape(x, shape=[{BIG}, -1])",
        "[4]",
        f"[{BIG}, -1]",
        f"`shape` axis {BIG} is too large: at most {limits.MAX_FEATURES}",
    ),
    (
        "x = reverse(x)",
        f"[{BIG}]",
        str(BIG),
        f"shape entry {BIG} is too large: at most {limits.MAX_FEATURES}",
    ),
    (
        "x = reverse(x)",
        "[2048, 2048, 2]",
        "2048, 2048, 2",
        f"too many features per sample: 2048 × 2048 × 2 = 8388608, at most {limits.MAX_FEATURES}",
    ),
    (
        "x = reverse(x)",
        "[1, 1, 1, 1, 1, 1, 1, 1, 2]",
        "1, 1, 1, 1, 1, 1, 1, 1, 2",
        f"the input shape has too many axes: 9, at most {limits.MAX_RANK}",
    ),
]

REPRODUCERS = FLOATS + TOO_LARGE
IDS = [
    f"{i}-{body.split('(')[0].split('=')[-1].strip()}" for i, (body, *_) in enumerate(REPRODUCERS)
]


@pytest.mark.parametrize(("body", "shape", "at", "message"), REPRODUCERS, ids=IDS)
def test_each_reproducer_is_e201_at_the_value(body, shape, at, message):
    text = spec(body, shape)
    d = only_error(text)
    assert (d.code, d.line, d.column) == ("E201", *where(text, at)), d
    assert message in d.message


@pytest.mark.parametrize(("body", "shape", "at", "message"), REPRODUCERS, ids=IDS)
def test_each_reproducer_is_e201_in_yaml_too(body, shape, at, message):
    program, diags = dsl.parse(Source("spec.flow", spec(body, shape)))
    assert program is not None and not diags
    d = only_error(to_yaml(program), "spec.yaml")
    assert d.code == "E201"
    if (body, shape, at, message) in TOO_LARGE:
        assert message in d.message
    else:  # the schema reports a float in `shape:` in its own words
        assert "integer" in d.message
        assert "the float" in d.message or "the number 4.0" in d.message


@pytest.mark.parametrize(("body", "shape", "at", "message"), REPRODUCERS, ids=IDS)
def test_compile_raises_a_spec_error_never_a_torch_error(body, shape, at, message):
    with pytest.raises(flowspec.SpecError) as e:
        flowspec.compile(spec(body, shape))
    assert [d.code for d in e.value.diagnostics] == ["E201"]


def test_the_dequantize_bits_refuse_a_float():
    text = spec("x = reverse(x)", head="    dequantize uniform(bits=8.0)\n")
    d = only_error(text)
    assert (d.code, d.line, d.column) == ("E201", *where(text, "bits=8.0"))
    assert "`bits` expected an integer, got the float 8.0" in d.message


def test_an_integral_float_gets_a_hint_with_the_integer():
    d = only_error(spec("x = coupling.spline(x, net=mlp, bins=8.0)"))
    assert d.hint is not None and "write `8`" in d.hint
    assert "2.5" in only_error(spec("x = coupling.spline(x, net=mlp, bins=2.5)")).message


def test_sizes_at_their_bounds_check_clean():
    at_bounds = [
        spec(f"x = coupling.affine(x, net=mlp(hidden=[{limits.MAX_WIDTH}]))"),
        spec(RESIDUAL.format(f"power_iters={limits.MAX_POWER_ITERS}")),
        spec(RESIDUAL.format(f"trace=hutchinson(samples={limits.MAX_SAMPLES})")),
        spec(f"x = shuffle(x, seed={limits.MAX_SEED})"),
        spec("x = reverse(x)", f"[{limits.MAX_FEATURES}]"),
        spec("x = reverse(x)", "[1, 1, 1, 1, 1, 1, 1, 4]"),
    ]
    for text in at_bounds:
        assert not [d for d in Compilation(Source("s.flow", text)).diagnostics if d.is_error]


# ------------------------------------------------------------- the registry's bounds

#: integer options that are not sizes: an axis index, range-checked by its shape rule
NOT_SIZES = {("split", "dim"), ("concat", "dim")}


def _integer_options():
    def visit(owner, options):
        for opt in options:
            if isinstance(opt.type, Enum):
                for word, sub in opt.type.words.items():
                    yield from visit(word, sub)
            elif isinstance(opt.type, (Int, IntList)):
                yield owner, opt

    for kind in KINDS:
        yield from visit(kind.name, kind.options)
    for table in (LATENTS, DEQUANTIZERS):
        for word, sub in table.words.items():
            yield from visit(word, sub)


def test_every_integer_option_that_is_a_size_has_an_upper_bound():
    for owner, opt in _integer_options():
        if (owner, opt.name) in NOT_SIZES:
            continue
        if isinstance(opt.type, Int):
            assert opt.type.max is not None, (owner, opt.name)
        else:
            assert opt.type.max_len is not None and opt.type.item_max is not None, (
                owner,
                opt.name,
            )


def test_every_bounded_option_is_in_the_limits_table():
    table = limits.limits_table()
    for owner, opt in _integer_options():
        if (owner, opt.name) not in NOT_SIZES:
            assert f"{owner}" in table and f"`{opt.name}`" in table, (owner, opt.name)


# -------------------------------------------------------------- the coupling masks


def _by_definition(mask: str, flip: bool, shape: tuple[int, ...]) -> list[int]:
    """The transformed flat indices, straight from the definition (LANGUAGE.md)."""
    out = []
    for flat in range(masks.numel(shape)):
        idx = []
        rest = flat
        for n in reversed(shape):
            idx.append(rest % n)
            rest //= n
        idx.reverse()
        if mask in ("half", "channel"):
            transformed = idx[0] >= shape[0] // 2
        elif mask == "alternate":
            transformed = idx[0] % 2 == 1
        else:
            transformed = (idx[1] + idx[2]) % 2 == 1
        if transformed != flip:
            out.append(flat)
    return out


@pytest.mark.parametrize("mask", ["half", "channel", "alternate", "checkerboard"])
@pytest.mark.parametrize("flip", [False, True])
def test_the_range_built_masks_match_their_definition(mask, flip):
    shapes = [(1, 1, 1), (2, 3, 3), (3, 4, 5), (5, 2, 1), (4, 1, 6)]
    if mask != "checkerboard":
        shapes += [(1,), (2,), (5,), (8,), (3, 2)]
    for shape in shapes:
        assert masks.transformed_indices(mask, flip, shape) == _by_definition(mask, flip, shape)
    if mask != "checkerboard":
        for d in range(1, 9):
            a, b = masks.axis0_split(mask, flip, d)
            assert sorted([*a, *b]) == list(range(d))
            assert [r for r in b] == [i for i in _by_definition(mask, flip, (d,))]


# --------------------------------------------------------- counting without allocating


@pytest.mark.parametrize(("kind", "example"), list(cases()))
def test_counting_on_the_meta_device_matches_the_real_block(kind, example):
    opts = resolve_example(kind, example)
    cls = runtime_class(kind)
    shapes = [tuple(s) for s in example.shapes]
    real = cls(shapes, **opts)
    with torch.device("meta"):
        meta = cls(shapes, **opts)
    assert build._numbers(meta) == build._numbers(real)
    assert sum(p.numel() for p in meta.parameters()) == sum(p.numel() for p in real.parameters())


def test_summary_counts_what_the_compiled_module_has():
    from flowspec.summary import parameter_counts

    for path in sorted((ROOT / "specs").glob("*.flow")):
        comp = Compilation.of(path)
        fg = comp.flow_graph()
        module = flowspec.compile(path)
        real = [
            sum(p.numel() for p in getattr(module, f"b{i}").parameters())
            for i in range(len(fg.blocks()))
        ]
        assert parameter_counts(fg) == real, path.name


# ------------------------------------------------------------- compile's size check

WIDE = spec("x = coupling.affine(x, net=mlp(hidden=[65536]))\n    x = reverse(x)", "[65536]")


def test_a_flow_over_max_params_is_e501_at_its_largest_block_before_allocating():
    with pytest.raises(flowspec.SpecError) as e:
        flowspec.compile(WIDE)
    (d,) = [d for d in e.value.diagnostics if d.is_error]
    assert (d.code, d.line, d.column) == ("E501", *where(WIDE, "coupling.affine"))
    # 32768·65536 + 65536 + 65536·65536 + 65536 weights and biases
    assert f"has {32768 * 65536 + 65536 + 65536 * 65536 + 65536:,} parameters" in d.message
    assert f"over the limit of {limits.MAX_PARAMS:,}" in d.message
    assert "max_params" in d.hint


@pytest.mark.parametrize("keyword", ["max_params", "max_parameters"])
def test_max_params_is_a_compile_option_under_its_old_name_too(keyword):
    realnvp = ROOT / "specs" / "realnvp_tabular.flow"
    with pytest.raises(flowspec.SpecError) as e:
        flowspec.compile(realnvp, **{keyword: 10})
    assert [d.code for d in e.value.diagnostics] == ["E501"]
    assert isinstance(flowspec.compile(realnvp, **{keyword: None}), flowspec.Flow)
    assert isinstance(flowspec.compile(realnvp, **{keyword: 0}), flowspec.Flow)


def test_both_names_of_the_limit_at_once_are_refused():
    with pytest.raises(TypeError, match="not both"):
        flowspec.compile(WIDE, max_params=10, max_parameters=10)


def test_buffers_count_against_the_limit_at_compile_time():
    # a shuffle learns nothing (no E501) but holds its permutation and its inverse
    text = spec("x = shuffle(x)", "[1000]")
    assert not [d for d in flowspec.check(text) if d.is_error]
    with pytest.raises(flowspec.SpecError) as e:
        flowspec.compile(text, max_params=1500)
    (d,) = e.value.diagnostics
    assert (d.code, d.line, d.column) == ("E500", *where(text, "shuffle(x)"))
    assert "needs 2,000 parameters and buffers" in d.message


LINEAR = spec("x = reverse(x)\n    x = linear(x)\n    x = reverse(x)")


@pytest.mark.parametrize(
    "error",
    [
        MemoryError(),
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory"),
        OverflowError("cannot fit 'int' into an index-sized integer"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_an_allocation_failure_at_compile_is_a_spec_error_naming_the_block(monkeypatch, error):
    from flowspec.runtime.linear import Linear

    def fail(self, *args, **kwargs):
        raise error

    monkeypatch.setattr(Linear, "__init__", fail)
    with pytest.raises(flowspec.SpecError) as e:
        flowspec.compile(LINEAR)
    (d,) = e.value.diagnostics
    assert (d.code, d.line, d.column) == ("E500", *where(LINEAR, "linear(x)"))
    assert "could not allocate this `linear` block" in d.message
    assert type(error).__name__ in d.message
    assert isinstance(e.value.__cause__, type(error))


def test_a_failure_moving_a_block_to_its_device_is_a_spec_error(monkeypatch):
    from flowspec.runtime.linear import Linear

    def fail(self, *args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(Linear, "to", fail)
    with pytest.raises(flowspec.SpecError) as e:
        flowspec.compile(LINEAR, dtype=torch.float64)
    (d,) = e.value.diagnostics
    assert (d.code, d.line, d.column) == ("E500", *where(LINEAR, "linear(x)"))
    assert "CUDA out of memory" in d.message


def test_summary_builds_no_module(run_cli, tmp_path, monkeypatch):
    from flowspec.runtime.linear import Linear

    def fail(self, *args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(Linear, "__init__", fail)
    (tmp_path / "s.flow").write_text(LINEAR, encoding="utf-8")
    r = run_cli("summary", "s.flow")
    assert r.status == 0, r.stderr
    assert "total: 3 blocks, 36 parameters" in r.stdout


# ------------------------------------------------------- summary as a bounded process

#: the child may map at most this much memory: torch's libraries and a margin, far
#: below the module a summary used to build (4.4 GB for the first spec below)
ADDRESS_SPACE = 3 << 30


def _summary(tmp_path, text: str) -> subprocess.CompletedProcess:
    path = tmp_path / "big.flow"
    path.write_text(text, encoding="utf-8")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    return subprocess.run(
        [sys.executable, "-m", "flowspec", "summary", str(path)],
        capture_output=True,
        text=True,
        preexec_fn=limit,
        cwd=ROOT,
    )


def test_summary_of_a_huge_input_is_a_diagnostic_not_a_crash(tmp_path):
    text = spec("x = coupling.affine(x, net=mlp(hidden=[8]))", "[100000000]")
    r = _summary(tmp_path, text)
    assert r.returncode == 1, r.stderr
    assert "error[E201]: shape entry 100000000 is too large" in r.stderr
    assert f"big.flow:{':'.join(map(str, where(text, '100000000')))}" in r.stderr
    assert "crashed" not in r.stderr and "Traceback" not in r.stderr


def test_summary_at_the_bounds_counts_without_allocating(tmp_path):
    # 412 billion parameters: building them would need 1.6 TB
    d, h = limits.MAX_FEATURES, limits.MAX_WIDTH
    text = spec(
        f"x = coupling.affine(x, net=mlp(hidden=[{h}]), mask=alternate)\n    x = reverse(x)",
        f"[{d}]",
    )
    r = _summary(tmp_path, text)
    assert r.returncode == 0, r.stderr
    count = (d // 2) * h + h + h * (2 * (d // 2)) + 2 * (d // 2)
    assert f"total: 2 blocks, {count:,} parameters" in r.stdout
    assert "crashed" not in r.stderr
