"""Upper bounds on every size a spec can ask for, and the table the README shows.

Spec text is untrusted: a size that is only checked for being positive lets a
two-line spec ask for a terabyte (``mlp(hidden=[1000000000000])``) or a loop that
never ends (``power_iters=1000000000000``).  Every integer option of the registry
therefore has an upper bound (``Int(max=...)``, ``IntList(max_len=..., item_max=...)``)
taken from the constants below, checked statically by ``flowspec check`` as E201
"too large", and the compiled module as a whole is refused (E500) before anything is
allocated when it has more than :data:`MAX_PARAMS` parameters (E501).

The bounds are generous: a large Glow (3×256×256 input, 512 channels, 3×3 kernels,
32 steps per scale) stays far below every one of them.  This module imports neither
torch nor the registry at import time, so the checker stays light.
"""

from __future__ import annotations

#: features per sample (the product of the input shape) and the size of any one axis:
#: 2**22, a 4×1024×1024 image or 4 million tabular features.  Building a block costs
#: Python-level work per feature (a shuffle's permutation, a checkerboard's indices:
#: seconds per million), so this bound also bounds the time compile and summary take
MAX_FEATURES = 1 << 22
#: axes of the input shape (without the batch axis)
MAX_RANK = 8
#: a hidden width: an mlp layer, the channels of a conv or resnet net
MAX_WIDTH = 1 << 16
#: hidden layers of an mlp or MADE net, convolutions of a conv net, units of a resnet
MAX_LAYERS = 64
#: a convolution kernel's side
MAX_KERNEL = 31
#: Hutchinson probe vectors per forward pass (each is a copy of the batch)
MAX_SAMPLES = 1024
#: power-iteration steps per forward pass of a residual block
MAX_POWER_ITERS = 1000
#: power-series terms of a residual block's exact evaluation (``eval_terms``): each
#: term is d vector-Jacobian products
MAX_EVAL_TERMS = 10_000
#: terms of a residual block's ``series(terms=)`` and ``roulette(exact_terms=)``
MAX_SERIES_TERMS = 100
#: iterations of a fixed-point inverse
MAX_FIXEDPOINT_ITER = 100_000
#: a seed (``shuffle(seed=)``, ``random(seed=)``): what a signed 64-bit integer holds
MAX_SEED = (1 << 63) - 1
#: a squeeze / unsqueeze factor (its square may not exceed :data:`MAX_FEATURES`)
MAX_FACTOR = 1 << 11
#: the parts of one ``split(sizes=[...])``
MAX_SPLIT_PARTS = 1024
#: equal steps of a fixed-step ODE solver
MAX_ODE_STEPS = 10_000
#: frequencies of an ode block's Fourier time embedding (``time=fourier(features=K)``):
#: 2K more inputs of the dynamics net's first layer
MAX_TIME_FREQUENCIES = 1024
#: the smallest ``roulette(p=)``: the series has 1/p terms on average, so a tiny p
#: is a forward pass that does not end
MIN_ROULETTE_P = 0.01
#: learned parameters of one flow, by default: 2·10⁹, 8 GB in float32.  ``flowspec
#: check`` counts them from the registry (E501 above it; ``--max-params N``) and
#: ``flowspec.compile(..., max_params=N)`` also bounds parameters and buffers by it,
#: counted on the ``meta`` device (E500)
MAX_PARAMS = 2_000_000_000
#: the old name of :data:`MAX_PARAMS`
MAX_PARAMETERS = MAX_PARAMS


def _range(lo: int | None, hi: int | None) -> str:
    if lo is None and hi is None:
        return "any integer"
    if hi is None:
        return f"≥ {lo:,}"
    if lo is None:
        return f"≤ {hi:,}"
    return f"{lo:,} … {hi:,}"


def _accepts(t) -> str | None:
    """What a bounded integer option type accepts, or None for other types."""
    from flowspec.kinds.options import Float, Int, IntList

    if isinstance(t, Int) and t.max is not None:
        return _range(t.min, t.max)
    if isinstance(t, IntList) and (t.max_len is not None or t.item_max is not None):
        length = _range(t.min_len or None, t.max_len)
        return f"{length} {t.items}, each {_range(t.item_min, t.item_max)}"
    if isinstance(t, Float) and t.min is not None and t.min > 0:
        upper = "" if t.max is None else f", {'<' if t.max_open else '≤'} {t.max:g}"
        return f"{'>' if t.min_open else '≥'} {t.min:g}{upper}"
    return None


def bounded_options() -> list[tuple[str, str, str]]:
    """(owner, option, what it accepts) for every bounded option of the registry:
    block options, then net, estimator and other enum-word options."""
    from flowspec.kinds import DEQUANTIZERS, KINDS, LATENTS
    from flowspec.kinds.options import Enum

    rows: list[tuple[str, str, str]] = []
    seen: dict[tuple[str, str], str] = {}

    def visit(owner: str, options, kind: str = "") -> None:
        for opt in options:
            if isinstance(opt.type, Enum):
                for word, sub in opt.type.words.items():
                    visit(f"{opt.name}={word}(...)", sub, kind)
                continue
            accepts = _accepts(opt.type)
            if accepts is None or seen.get((owner, opt.name)) == accepts:
                continue
            if (owner, opt.name) in seen:  # a kind's own range (gaussianize's conv depth)
                owner_of = f"{owner}` of `{kind}"
                if (owner_of, opt.name) in seen:
                    continue
                seen[(owner_of, opt.name)] = accepts
                rows.append((owner_of, opt.name, accepts))
                continue
            seen[(owner, opt.name)] = accepts
            rows.append((owner, opt.name, accepts))

    for kind in KINDS:
        visit(kind.name, kind.options, kind.name)
    for keyword, table in (("latent", LATENTS), ("dequantize", DEQUANTIZERS)):
        for word, sub in table.words.items():
            visit(f"{keyword} {word}(...)", sub)
    blocks = [r for r in rows if not r[0].endswith("(...)")]
    words = sorted((r for r in rows if r[0].endswith("(...)")), key=lambda r: r[0])
    return blocks + words


def limits_table() -> str:
    """The README's table of limits (``tests/test_readme.py`` keeps it equal)."""
    rows = [
        ("`input`", "each axis", _range(1, MAX_FEATURES)),
        ("`input`", "axes", _range(1, MAX_RANK)),
        ("`input`", "features per sample (the product)", _range(1, MAX_FEATURES)),
        *((f"`{o}`", f"`{n}`", a) for o, n, a in bounded_options()),
        (
            "`check`, `compile`",
            "parameters of the flow (E501)",
            f"≤ {MAX_PARAMS:,} (`--max-params`, `max_params=`)",
        ),
        (
            "`compile`",
            "parameters and buffers of the flow (E500)",
            f"≤ {MAX_PARAMS:,} (`max_params=`)",
        ),
    ]
    lines = ["| where | what | accepts |", "|---|---|---|"]
    lines += [f"| {w} | {what} | {a} |" for w, what, a in rows]
    return "\n".join(lines)
