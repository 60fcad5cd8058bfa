"""The word tables: activations, nets, latents, dequantizers and the enum words of
block options (masks, scales, orders, estimators, solvers), and the options that
several families share (``net=``, ``cond=``, a spline's ``bins`` and ``bound``).

Each table is an :class:`~flowspec.kinds.options.Enum` of words with their options.
"""

from __future__ import annotations

from flowspec.kinds import limits as L
from flowspec.kinds.options import Enum, Float, Int, IntList, Option, Tensor

#: name → (Lipschitz constant, smooth?)
ACTIVATIONS: dict[str, tuple[float, bool]] = {
    "relu": (1.0, False),
    "elu": (1.0, True),
    "tanh": (1.0, True),
    "softplus": (1.0, True),
    "lipswish": (1.0, True),
    "leaky_relu": (1.0, False),
    "sigmoid": (0.25, True),
    # sup |d/dx x·Φ(x)| = 1.1289 (at x = √2); sup |d/dx x·σ(x)| = 1.0998 (at x ≈ 2.4)
    "gelu": (1.129, True),
    "swish": (1.100, True),
}
ACT = Enum(
    {a: () for a in ACTIVATIONS},
    what="activation",
    docs={
        a: f"Lipschitz constant {lip:g}" + ("" if smooth else ", not smooth")
        for a, (lip, smooth) in ACTIVATIONS.items()
    },
)
#: the hidden widths of an mlp or MADE net (flowspec.kinds.limits bounds every size)
HIDDEN = IntList(
    max_len=L.MAX_LAYERS, item_min=1, item_max=L.MAX_WIDTH, item="width", items="widths"
)
WIDTH = Int(min=1, max=L.MAX_WIDTH)
LAYERS = Int(min=1, max=L.MAX_LAYERS)
SEED = Int(min=0, max=L.MAX_SEED)
#: how a net's last layer starts (``init=`` of mlp, conv, resnet)
NET_INIT = Enum(
    {"zero": (), "default": ()},
    what="initialisation",
    docs={
        "zero": "the last layer starts at zero, so the block starts at the identity",
        "default": "PyTorch's default initialisation of every layer",
    },
)


def _nets(act: str) -> Enum:
    """The net words, their activation defaulting to ``act``."""
    return Enum(
        {
            "mlp": (
                Option("hidden", HIDDEN, [64, 64], doc="widths of the hidden layers"),
                Option("act", ACT, act),
                Option("init", NET_INIT, "zero", doc="`zero`: last layer zero (identity start)"),
            ),
            "conv": (
                Option("hidden", WIDTH, 512, doc="channels of the hidden layers"),
                Option("kernel", Int(min=1, max=L.MAX_KERNEL), 3),
                Option("depth", LAYERS, 2, doc="number of hidden convolutions"),
                Option("act", ACT, act),
                Option("init", NET_INIT, "zero"),
            ),
            "resnet": (
                Option("hidden", WIDTH, 256),
                Option("blocks", LAYERS, 2),
                Option("act", ACT, act),
                Option("init", NET_INIT, "zero"),
            ),
        },
        what="net",
        docs={
            "mlp": "flatten, then Linear–act–…–Linear (one hidden layer per `hidden` width)",
            "conv": "Glow's conditioner for [C, H, W]: conv(kernel)–act–[conv(1)–act]×(depth − 1)"
            "–conv(kernel), padding keeps H and W",
            "resnet": "for [C, H, W]: conv3, `blocks` residual units, act, conv3 (He et al. "
            "2016, arXiv:1512.03385)",
        },
    )


NETS = _nets("relu")
#: the nets of ``ode`` blocks: the same words, with a smooth default activation
#: (FFJORD's softplus), so the default dynamics are smooth and W102 does not fire
ODE_NETS = _nets("softplus")

LATENTS = Enum(
    {"normal": (), "logistic": (), "uniform": ()},
    what="latent distribution",
    docs={
        "normal": "standard normal N(0, I)",
        "logistic": "independent standard logistic features (NICE's prior)",
        "uniform": "uniform on [0, 1]^d (log-density 0 inside, −∞ outside)",
    },
)
DEQUANTIZERS = Enum(
    {"uniform": (Option("bits", Int(min=1, max=16), 8, doc="data are integers in [0, 2^bits)"),)},
    what="dequantizer",
    docs={"uniform": "add U[0, 1) noise to the integers and divide by 2^bits"},
)

MASK = Enum(
    {m: () for m in ("half", "alternate", "checkerboard", "channel")},
    what="mask",
    docs={
        "half": "the first d // 2 entries of axis 0 condition, the rest are transformed",
        "alternate": "even entries of axis 0 condition, odd ones are transformed",
        "checkerboard": "[C, H, W]: positions with h + w even condition",
        "channel": "[C, H, W]: the first C // 2 channels condition (as `half`)",
    },
)
SCALE = Enum(
    {"exp": (), "sigmoid": (), "softclamp": ()},
    what="scale",
    docs={
        "exp": "s = exp(h) (Real NVP)",
        "sigmoid": "s = σ(h + 2)/σ(2) (Glow's σ(h + 2), scaled to start at the identity)",
        "softclamp": "log s = 2·tanh(h/2): a bounded log-scale, s ∈ (e⁻², e²)",
    },
)
ORDER = Enum(
    {"natural": (), "reverse": (), "random": (Option("seed", SEED, 0),)},
    what="order",
    docs={
        "natural": "feature i depends on features 0 … i − 1",
        "reverse": "feature i depends on features i + 1 … d − 1",
        "random": "a fixed random order drawn from `seed`",
    },
)
#: how a MADE's last layer starts (``init=`` of the autoregressive blocks)
INIT = Enum(
    {"zero": (), "random": ()},
    what="initialisation",
    docs={
        "zero": "the conditioner's last layer starts at zero, so the block starts as the "
        "identity (unit scale, equal spline bins)",
        "random": "PyTorch's default initialisation of every layer, as nflows' and zuko's "
        "MADEs start (a random map near the identity)",
    },
)
TRACE = Enum(
    {
        "hutchinson": (
            Option("samples", Int(min=1, max=L.MAX_SAMPLES), 1),
            Option("noise", Enum({"rademacher": (), "gaussian": ()}, what="noise"), "rademacher"),
        ),
        "exact": (),
    },
    what="trace estimator",
    docs={
        "hutchinson": "tr(A) ≈ mean of vᵀAv over `samples` random probes v (unbiased)",
        "exact": "the exact trace, by d vector-Jacobian products (small d)",
    },
)
_LOGDET_WORDS: dict[str, tuple[Option, ...]] = {
    "exact": (),
    "series": (Option("terms", Int(min=1, max=L.MAX_SERIES_TERMS), 5),),
    "roulette": (
        Option("p", Float(L.MIN_ROULETTE_P, 1.0, max_open=True), 0.5),
        Option(
            "exact_terms",
            Int(min=0, max=L.MAX_SERIES_TERMS),
            0,
            doc="terms always computed before the random tail (weight 1); the series "
            "then runs to exact_terms + N terms, N ~ Geometric(p) on {1, 2, …} "
            "(normflows' and residual-flows' n_exact_terms)",
        ),
    ),
}
_LOGDET_DOCS = {
    "exact": "the d×d Jacobian and its log-determinant (brute force, small d only)",
    "series": "the first `terms` terms of Σ (−1)^(k+1)/k·tr(J^k) (biased)",
    "roulette": "the series cut at exact_terms + N terms, N ~ Geometric(p), the random "
    "tail's terms reweighted by 1/P(reached): unbiased (Chen et al. 2019)",
}
LOGDET = Enum(_LOGDET_WORDS, what="log-det estimator", docs=_LOGDET_DOCS)
#: the estimator a residual block uses in eval mode (``module.eval()``)
EVAL_LOGDET = Enum(
    {"same": (), **_LOGDET_WORDS},
    what="log-det estimator",
    docs={"same": "the training estimator, `logdet`", **_LOGDET_DOCS},
)
FIXEDPOINT = Enum(
    {
        "fixedpoint": (
            Option("tol", Float(0.0, min_open=True), 1e-6),
            Option("max_iter", Int(min=1, max=L.MAX_FIXEDPOINT_ITER), 200),
        )
    },
    what="inverse",
    docs={
        "fixedpoint": "x ← y − g(x) from x = y until the certified bound "
        "c/(1 − c)·‖x_n − x_(n−1)‖₂ on every sample's distance to the exact preimage "
        "is ≤ tol (c = Lip(g)); an error after `max_iter` steps",
    },
)
GRAD = Enum(
    {"backprop": (), "neumann": ()},
    what="gradient",
    docs={
        "backprop": "differentiate through the log-det estimate",
        "neumann": "the memory-saving Neumann-series gradient (Chen et al. 2019), taken "
        "in the forward pass with Hutchinson traces",
    },
)
#: how an ode block's dynamics net reads the time t (``time=``)
TIME = Enum(
    {
        "concat": (),
        "fourier": (
            Option(
                "features",
                Int(min=1, max=L.MAX_TIME_FREQUENCIES),
                3,
                doc="K: the frequencies π, 2π, …, Kπ (2K inputs)",
            ),
        ),
        "concatsquash": (),
    },
    what="time embedding",
    docs={
        "concat": "t appended to the input as one more feature (a channel for conv and resnet)",
        "fourier": "cos(kπt), sin(kπt) for k = 1 … K appended to the input (zuko's CNF)",
        "concatsquash": "every linear layer's output gated by σ(W_g·t + b_g) and shifted by "
        "W_b·t (FFJORD's ConcatSquashLinear; net=mlp)",
    },
)
#: the extra loss terms of an ode block (``regularize=``)
REGULARIZE = Enum(
    {
        "none": (),
        "finlay": (
            Option("kinetic", Float(0.0), 0.01, doc="λ_K, the weight of ∫‖f‖² dt"),
            Option("jacobian", Float(0.0), 0.01, doc="λ_J, the weight of ∫‖∂f/∂x‖_F² dt"),
        ),
    },
    what="regulariser",
    docs={
        "none": "no extra loss term",
        "finlay": "λ_K·∫‖f‖² dt + λ_J·∫‖∂f/∂x‖_F² dt, integrated with the state per sample "
        "and averaged over the batch (Finlay et al. 2020, arXiv:2002.02798); the Frobenius "
        "norm exact with trace=exact, else Hutchinson's ‖εᵀ∂f/∂x‖² with the trace's probes",
    },
)
#: torchdiffeq's adaptive solvers: error-controlled by ``rtol``/``atol``
ADAPTIVE_SOLVERS = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
#: its fixed-grid solvers: ``steps`` equal steps, whatever the error
FIXED_STEP_SOLVERS = (
    "euler",
    "midpoint",
    "heun2",
    "heun3",
    "rk4",
    "explicit_adams",
    "implicit_adams",
)
SOLVERS = ADAPTIVE_SOLVERS + FIXED_STEP_SOLVERS
SOLVER = Enum(
    {s: () for s in SOLVERS},
    what="ODE solver",
    docs={
        **{s: "adaptive: error controlled by `rtol`, `atol`" for s in ADAPTIVE_SOLVERS},
        **{s: "fixed-step: `steps` equal steps" for s in FIXED_STEP_SOLVERS},
    },
)

#: ``net=`` is required (LANGUAGE.md §3 lists it without a default): a missing net is
#: E201 with a typical net as the hint, never a silent default mlp
_NET_HINT = (
    "add a net, such as `net=mlp(hidden=[64, 64])` (`net=conv(hidden=512)` for a [C, H, W] tensor)"
)
NET = Option("net", NETS, None, required=True, doc="a coupling's conditioner", hint=_NET_HINT)
#: the residual branch g: 1-Lipschitz activations only (E303 otherwise)
RESIDUAL_NET = Option(
    "net",
    NETS,
    None,
    required=True,
    doc="the residual branch g, spectrally normalised",
    hint="add a net, such as `net=mlp(hidden=[64, 64], act=lipswish)` "
    "(`net=conv(hidden=64, act=lipswish)` for a [C, H, W] tensor)",
)
ODE_NET = Option(
    "net",
    ODE_NETS,
    None,
    required=True,
    doc="the dynamics f(x, t); its activation defaults to softplus (smooth)",
    hint="add a net, such as `net=mlp(hidden=[64, 64])` (`net=conv(hidden=64)` for a "
    "[C, H, W] tensor)",
)
COND = Option("cond", Tensor(), None, doc="a tensor the conditioner reads, not consumed")
#: the rational-quadratic spline of coupling.spline and autoregressive.spline
SPLINE = (Option("bins", Int(min=1, max=64), 8), Option("bound", Float(0.0, min_open=True), 3.0))

#: the properties a flow may `require` → does the requirement take a bound?
REQUIREMENTS = {
    "invertible": False,
    "exact_logdet": False,
    "analytic_inverse": False,
    "lipschitz": True,
    "inverse_lipschitz": True,
}
