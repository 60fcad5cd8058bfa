"""The invertible residual block: i-ResNet and Residual Flow.

Behrmann, Grathwohl, Chen, Duvenaud, Jacobsen 2019, *Invertible Residual Networks*,
arXiv:1811.00995; Chen, Behrmann, Duvenaud, Jacobsen 2019, *Residual Flows for
Invertible Generative Modeling*, arXiv:1906.02735.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from flowspec.kinds.options import Choice, word
from flowspec.kinds.residual import iterations_for
from flowspec.runtime.base import Bijection
from flowspec.runtime.lipschitz_layers import LipschitzConvNet, LipschitzMLP
from flowspec.runtime.mlp_jacobian import Linearization, folded, linearize
from flowspec.runtime.residual_neumann import NeumannInForward

#: exact evaluation (``flowspec.exact``) forms the d×d Jacobian and takes ``slogdet`` up to
#: this many features per sample; above it, it sums ``eval_terms`` terms of the power
#: series with exact traces (see :meth:`Residual.series_tail_bound` for the error)
EXACT_MAX_FEATURES = 256
#: elements (probe copies × batch × features) of one chunk of exact-trace probes
_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class Estimator:
    """One log-det estimator: ``exact`` | ``series(terms)`` | ``roulette(p, exact_terms)``."""

    kind: str
    terms: int = 5
    p: float = 0.5
    exact_terms: int = 0

    @classmethod
    def of(cls, value: Choice | str) -> Estimator:
        def get(key: str, default: Any) -> Any:
            return value.get(key, default) if isinstance(value, Choice) else default

        return cls(
            word(value),
            int(get("terms", 5)),
            float(get("p", 0.5)),
            int(get("exact_terms", 0)),
        )

    def weights(self) -> tuple[int, list[float]]:
        """The number of terms n of this call and the value weights of terms 1..n:
        (−1)^{k+1}/k for ``series`` and for roulette's first ``exact_terms``, then
        (−1)^{k+1}/(k·P(reached k)) with n = exact_terms + N, N ~ Geometric(p) on
        {1, 2, …} (torch's generator, so seedable) and P(reached k) = (1 − p)^{k − e − 1}
        for k > e = exact_terms: E[estimate] = the full series (Chen et al. 2019)."""
        if self.kind == "series":
            return self.terms, [(-1) ** (k + 1) / k for k in range(1, self.terms + 1)]
        e = self.exact_terms
        n = e + int(torch.empty((), dtype=torch.float64).geometric_(self.p))
        q = 1.0 - self.p
        return n, [(-1) ** (k + 1) / (k * q ** max(0, k - e - 1)) for k in range(1, n + 1)]


class Residual(Bijection):
    """y = x + g(x) with Lip(g) ≤ c < 1 certified, so the map is invertible.

    Math: g is an MLP of :class:`~flowspec.runtime.lipschitz_layers.SpectralLinear` layers
    (each σ_max ≤ c, certified by an SVD, see that module) and 1-Lipschitz activations, or,
    for ``net=conv`` on [C, H, W], a net of
    :class:`~flowspec.runtime.lipschitz_layers.SpectralConv2d` layers whose zero-padded
    operator norms are certified ≤ c by the circular-convolution bound (Sedghi et al. 2019,
    arXiv:1805.10408): conv_k → a → [conv_1 → a]×(depth − 1) → conv_k, Lip(g) ≤ c^(depth+1).

    - ladj = log det(I + J_g(x)) = Σ_{k≥1} (−1)^{k+1}/k · tr(J_g^k), convergent as
      ‖J_g‖ ≤ c < 1.  ``logdet=exact``: the d×d Jacobian by d vector-Jacobian products
      and ``slogdet`` (small d only).  ``logdet=series(terms=N)``: the first N terms (biased
      by at most Σ_{k>N} d·c^k/k).  ``logdet=roulette(p, exact_terms=e)``: the first e
      terms always, then N ~ Geometric(p) on {1, 2, …} more (one N per call, shared by
      the batch), term k > e weighted by 1/P(reached k) = (1 − p)^{−(k−e−1)}, an
      unbiased estimate (Chen et al. 2019) of e + 1/p terms on average; its variance is
      finite when the spectral radius ρ of J_g satisfies ρ² < 1 − p (proven for every
      such g when c² < 1 − p).  ``eval_logdet`` is the estimator in eval mode
      (``module.eval()``; ``same``: ``logdet``), e.g. ``roulette(exact_terms=20)`` as
      residual-flows evaluate, or ``exact``.
    - ``trace=hutchinson(samples, noise)``: tr(J^k) ≈ mean over v of vᵀJ^k v with v
      Rademacher or Gaussian, computed as ((Jᵀ)^k v)·v by k vector-Jacobian products;
      ``trace=exact`` takes traces of powers of the full Jacobian.
    - ``grad=neumann`` (series and roulette): the value is computed without building a
      graph through the power series; the gradient comes from the surrogate
      wᵀ J_g v with w = Σ_{k=1}^{N} (−1)^{k+1} ω_k (Jᵀ)^{k−1} v held constant (ω_k the
      estimator's weight), whose gradient is the Neumann-series estimate of
      ∂ log det(I + J)/∂θ = tr((I + J)^{-1} ∂J/∂θ) (Chen et al. 2019, eq. 8); with
      Hutchinson traces that gradient is taken in the forward pass and the surrogate's
      second-order graph freed at once (:class:`NeumannInForward`).  With
      ``logdet=exact`` the gradient of ``slogdet`` is used and ``grad`` has no effect.
    - inverse: x_{k+1} = y − g(x_k) from x_0 = y, a contraction with c = Lip(g) certified;
      it stops when the certified bound ‖x* − x_k‖₂ ≤ c/(1 − c)·‖x_k − x_{k−1}‖₂ of every
      sample is ≤ tol (plus the dtype's rounding floor, :meth:`rounding_floor`), so each
      sample's preimage is within tol of the exact one; ``last_iterations`` and
      ``last_error_bound`` keep the last solve's count and bound.  Not stopping within
      ``max_iter`` raises ``RuntimeError`` naming the block.  Gradients through the
      inverse are those of the implicit function, dx*/dy = (I + J_g(x*))⁻¹: the backward
      pass solves w = (I + J_gᵀ)⁻¹u by the same contraction, one vector-Jacobian product
      of g per iteration (about as many as the forward solve took) plus one extra
      evaluation of g to hold its graph.
      ladj of the inverse is −ladj(x) with the same estimator.

    With ``net=mlp`` every product that needs no graph through it — the power series
    in eval mode or with ``grad=neumann``, the Neumann vector, the surrogate's gradient,
    the inverse's adjoint — is formed from J_g = W_L D_{L−1} ⋯ D_1 W_1 in closed form
    (:mod:`flowspec.runtime.mlp_jacobian`) instead of by autograd; the numbers are the
    same to rounding (tested against autograd in float64).

    ``forward`` returns the configured (possibly stochastic) estimate; ``transform`` is
    x + g(x) with no log-det work.

    Exact evaluation (``exact_eval = True``, set by ``flowspec.exact(flow)`` or
    ``flow.log_prob(x, exact=True)``) replaces the estimate, whatever ``logdet``,
    ``trace`` and ``grad`` say: for d ≤ :data:`EXACT_MAX_FEATURES`, ``slogdet(I + J_g)``
    with J_g from d vector-Jacobian products (exact to rounding); above it the series
    Σ_{k=1}^{n} (−1)^{k+1}/k · tr(J_g^k), n = ``eval_terms``, every trace exact
    (Σ_i e_iᵀ J_g^k e_i, n·d vector-Jacobian products in chunks), deterministic and off
    by at most :meth:`series_tail_bound` (n).  Gradients are backpropagated.

    References: Behrmann et al. 2019, Invertible Residual Networks, arXiv:1811.00995;
    Chen et al. 2019, Residual Flows for Invertible Generative Modeling, arXiv:1906.02735.

    Args:
        in_shapes: ``[shape]``; any shape, g acts on the flattened features.
        net: ``mlp(hidden, act, init)`` (any shape, flattened) or
            ``conv(hidden, kernel, depth, act, init)`` ([C, H, W] only, shapes kept);
            ``init=zero`` starts g at 0 (the identity).
        lipschitz: c in (0, 1), the bound on every linear map of g.
        power_iters: power-iteration steps per weight update (for the gradient of σ of an
            mlp; conv layers differentiate the exact σ and ignore it).
        logdet: ``exact`` | ``series(terms)`` | ``roulette(p, exact_terms)``.
        eval_logdet: ``same`` or one of ``logdet``'s estimators, used in eval mode.
        trace: ``hutchinson(samples, noise)`` | ``exact``.
        grad: ``backprop`` | ``neumann``.
        inverse: ``fixedpoint(tol, max_iter)``.
        eval_terms: terms of the exactly-traced series under exact evaluation when d is
            over :data:`EXACT_MAX_FEATURES`.
        name: how errors name the block (the code generator may set it).
    """

    _eye: Tensor  # a buffer: the d×d identity

    def __init__(
        self,
        in_shapes: list[tuple[int, ...]],
        net: Choice,
        lipschitz: float = 0.97,
        power_iters: int = 5,
        logdet: Choice | str = "roulette",
        eval_logdet: Choice | str = "same",
        trace: Choice | str = "hutchinson",
        grad: Choice | str = "backprop",
        inverse: Choice | str = "fixedpoint",
        eval_terms: int = 100,
        name: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__(in_shapes)
        (shape,) = self.in_shapes
        kind = word(net)
        if kind not in ("mlp", "conv"):
            raise ValueError(
                f"residual supports net=mlp or net=conv, got net={kind}: a certified "
                "Lipschitz bound for resnet nets is not implemented"
            )
        if kind == "conv" and len(shape) != 3:
            raise ValueError(f"residual with net=conv needs a [C, H, W] input, got {list(shape)}")
        act = net["act"]
        if not 0.0 < lipschitz < 1.0:
            raise ValueError(f"residual needs 0 < lipschitz < 1, got {lipschitz}")
        self.features = math.prod(shape)
        self.lipschitz = float(lipschitz)
        zero_last = word(net.get("init", "zero")) == "zero"
        self.g: LipschitzMLP | LipschitzConvNet
        if kind == "conv":
            channels, height, width = shape  # [C, H, W], checked above
            self.g = LipschitzConvNet(
                (channels, height, width),
                int(net["hidden"]),
                int(net.get("kernel", 3)),
                int(net.get("depth", 2)),
                act,
                lipschitz,
                zero_last=zero_last,
            )
        else:
            self.g = LipschitzMLP(
                self.features, list(net["hidden"]), act, lipschitz, power_iters, zero_last
            )
        if self.g.act_lipschitz > 1.0:
            raise ValueError(
                f"residual needs a 1-Lipschitz activation, got {word(act)} "
                f"(Lipschitz constant {self.g.act_lipschitz:g})"
            )
        self.name = name or f"residual(x: {list(shape)})"

        #: the log-det estimators of training and of eval mode (``eval_logdet``)
        self.train_estimator = Estimator.of(logdet)
        self.eval_estimator = (
            self.train_estimator if word(eval_logdet) == "same" else Estimator.of(eval_logdet)
        )
        self.exact_trace = word(trace) == "exact"
        self.samples = int(trace.get("samples", 1)) if isinstance(trace, Choice) else 1
        noise = trace.get("noise", "rademacher") if isinstance(trace, Choice) else "rademacher"
        self.gaussian = word(noise) == "gaussian"
        self.neumann = word(grad) == "neumann"
        self.tol = float(inverse.get("tol", 1e-6)) if isinstance(inverse, Choice) else 1e-6
        self.max_iter = int(inverse.get("max_iter", 200)) if isinstance(inverse, Choice) else 200
        if int(eval_terms) < 1:
            raise ValueError(f"residual needs eval_terms >= 1, got {eval_terms}")
        self.eval_terms = int(eval_terms)
        #: exact evaluation switch, set by ``flowspec.exact(flow)``
        self.exact_eval = False
        #: the last fixed-point solve: its iterations and its certified error bound
        self.last_iterations: int = 0
        self.last_error_bound: float | None = None
        # cotangents that pick Jacobian rows: batch copy i (of d) gets e_i
        self.register_buffer("_eye", torch.eye(self.features), persistent=False)

    # ------------------------------------------------------------------ public API

    def lipschitz_bound(self) -> float:
        """A proven upper bound of Lip(g) for the current weights (float64 SVD of every
        weight used, or of every kernel's DFT for conv, times the activations' constants);
        ≤ c by construction."""
        return self.g.lipschitz_bound()

    def series_tail_bound(self, terms: int | None = None) -> float:
        """An upper bound of |log det(I + J_g) − Σ_{k≤n} (−1)^{k+1}/k · tr(J_g^k)|, the
        error of the exactly-traced series with n = ``terms`` (default ``eval_terms``):
        |tr(J^k)| ≤ d·‖J‖^k ≤ d·c^k with c = :meth:`lipschitz_bound`, so the tail is at
        most Σ_{k>n} d·c^k/k ≤ d·c^{n+1}/((n+1)(1 − c))."""
        n = self.eval_terms if terms is None else int(terms)
        c = self.lipschitz_bound()
        if c <= 0.0:
            return 0.0
        return self.features * c ** (n + 1) / ((n + 1) * (1.0 - c))

    @property
    def estimator(self) -> Estimator:
        """The log-det estimator in use: ``logdet`` in training mode, ``eval_logdet`` in
        eval mode."""
        return self.train_estimator if self.training else self.eval_estimator

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        weights = self.g.weights()
        y, ladj = self._value_and_ladj(x.reshape(x.shape[0], self.features), weights)
        return y.reshape(x.shape), ladj

    def transform(self, x: Tensor) -> Tensor:
        flat = x.reshape(x.shape[0], self.features)
        return (flat + self.g(flat)).reshape(x.shape)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        weights = self.g.weights()
        x = self._fixed_point(y.reshape(y.shape[0], self.features), weights)
        _, ladj = self._value_and_ladj(x, weights)
        return x.reshape(y.shape), -ladj

    def inverse_transform(self, y: Tensor) -> Tensor:
        weights = self.g.weights()
        return self._fixed_point(y.reshape(y.shape[0], self.features), weights).reshape(y.shape)

    def extra_repr(self) -> str:
        return (
            f"in_shapes={self.in_shapes}, lipschitz={self.lipschitz}, "
            f"logdet={self.train_estimator.kind}, eval_logdet={self.eval_estimator.kind}, "
            f"exact_trace={self.exact_trace}, neumann={self.neumann}, "
            f"eval_terms={self.eval_terms}"
        )

    # ------------------------------------------------------------------ inverse

    def contraction(self) -> float:
        """c = Lip(g), the product of the layers' certified norms and the activations'
        constants (from the cached certificates; ≤ ``lipschitz`` by construction)."""
        return min(self.g.layer_bound(), self.lipschitz)

    def rounding_floor(self, x: Tensor, c: float | None = None) -> float:
        """What the dtype can certify of an iterate: one step's rounding, about
        √d·ε·max|x|·(1 + c), through 1/(1 − c)."""
        if not x.numel() or not x.is_floating_point():
            return 0.0
        eps = torch.finfo(x.dtype).eps
        c = self.contraction() if c is None else c
        scale = float(x.abs().max()) + 1.0
        return 4.0 * math.sqrt(self.features) * eps * scale * (1.0 + c) / (1.0 - c)

    def predicted_iterations(self, scale: float, tol: float | None = None) -> int:
        """The iterations the a-priori bound ‖x* − x_n‖ ≤ cⁿ/(1 − c)·‖x₁ − x₀‖ needs for
        ``tol`` when ‖x₁ − x₀‖ = ‖g(y)‖ ≤ ``scale``: the smallest n with
        cⁿ·scale/(1 − c) ≤ tol (the a-posteriori rule stops no later)."""
        c, tol = self.contraction(), self.tol if tol is None else tol
        return iterations_for(c, scale, tol)

    def _fixed_point(self, y: Tensor, weights: list[Tensor]) -> Tensor:
        """x* = y − g(x*) by x_{n+1} = y − g(x_n) from x_0 = y, stopped by the certified
        a-posteriori bound ‖x* − x_n‖₂ ≤ c/(1 − c)·‖x_n − x_{n−1}‖₂ (c = Lip(g) from the
        layers' certificates): every sample's bound ≤ tol, plus the rounding floor of
        the dtype (:meth:`rounding_floor`; ~1e-15 relative in float64).  A sample whose
        bound is met keeps that iterate: once at least an eighth of the samples still
        iterated are done, they leave the batch (so g runs on fewer rows)."""
        g = self.g
        c = self.contraction()
        factor = c / (1.0 - c)
        with torch.no_grad():
            wd = [w.detach() for w in weights]
            fast = folded(g, wd)
            x = xa = y.detach()
            ya = fast.shift(x) if fast is not None else x  # what a step subtracts g from
            limit = self.tol + self.rounding_floor(x, c)
            rows: Tensor | None = None  # the rows of x still iterated (None: all)
            worst = bound = 0.0
            n = 0
            for n in range(1, self.max_iter + 1):  # noqa: B007 (n is kept below)
                x_next = fast.step(xa, ya) if fast is not None else ya - g(xa, wd)
                errors = factor * (x_next - xa).norm(dim=1)
                xa = x_next
                done = errors <= limit
                finished = int(done.sum())
                if finished == errors.numel():
                    worst = max(worst, float(errors.max())) if finished else worst
                    if rows is None:
                        x = xa
                    else:
                        x[rows] = xa
                    break
                if finished and 8 * finished >= errors.numel():
                    worst = max(worst, float(errors[done].max()))
                    keep = ~done
                    if rows is None:
                        x, rows = xa, keep.nonzero().squeeze(1)
                    else:
                        x[rows[done]] = xa[done]
                        rows = rows[keep]
                    xa, ya = xa[keep], ya[keep]
            else:
                bound = float(errors.max())
                raise RuntimeError(
                    f"{self.name}: the fixed-point inverse did not converge in "
                    f"{self.max_iter} iterations (certified error bound {bound:.3g} > "
                    f"tol={self.tol:g}); raise max_iter or tol, or lower lipschitz"
                )
            self.last_iterations, self.last_error_bound = n, worst
        if torch.is_grad_enabled() and (y.requires_grad or any(w.requires_grad for w in weights)):
            x = self._implicit(y, x, weights, c)
        return x

    def _implicit(self, y: Tensor, x_star: Tensor, weights: list[Tensor], c: float) -> Tensor:
        """x* with the exact gradient of the fixed point x* = y − g(x*): the graph of
        x = y − g(x*) (x* held constant) carries ∂/∂y = I and ∂/∂θ = −∂g/∂θ, and a hook
        maps the incoming gradient u to w = (I + J_gᵀ)⁻¹u, solved by the contraction
        w ← u − J_gᵀw (‖J_g‖ ≤ c < 1) with one vector-Jacobian product of g at x* per
        step, so that every gradient behind x is that of the implicit function
        (dx*/dy = (I + J_g)⁻¹; deep-equilibrium models do the same, Bai et al. 2019)."""
        g = self.g
        x = y - g(x_star, weights)
        if not x.requires_grad:
            return x
        lin = linearize(g, x_star, weights)
        if lin is None:
            with torch.enable_grad():
                xs = x_star.detach().requires_grad_()
                gx = g(xs, [w.detach() for w in weights])

        def vjp(w: Tensor) -> Tensor:
            if lin is not None:  # closed form, no autograd graph
                return lin.vjp(w)
            return torch.autograd.grad(gx, xs, w, retain_graph=True)[0]

        def adjoint(u: Tensor | None) -> Tensor | None:
            if u is None:  # no gradient reaches x (autograd passes undefined ones as None)
                return None
            w, scale = u, float(u.abs().max()) if u.numel() else 0.0
            enough = self.tol * (1.0 + scale) + self.rounding_floor(u, c)  # as the solve
            for _ in range(self.max_iter):
                w_next = u - vjp(w)
                moved = float((w_next - w).abs().max()) if w.numel() else 0.0
                w = w_next
                if moved <= enough:
                    return w
            raise RuntimeError(
                f"{self.name}: the implicit gradient of the fixed-point inverse did not "
                f"converge in {self.max_iter} iterations (last step moved {moved:.3g}, "
                f"tol={self.tol:g}); raise max_iter or tol, or lower lipschitz"
            )

        x.register_hook(adjoint)
        return x

    # ------------------------------------------------------------------ log-det

    def _needs_graph(self, x: Tensor) -> bool:
        return torch.is_grad_enabled() and (
            x.requires_grad or any(p.requires_grad for p in self.g.parameters())
        )

    def _value_and_ladj(self, x: Tensor, weights: list[Tensor]) -> tuple[Tensor, Tensor]:
        """y = x + g(x) and the configured ladj estimate, for flat x: [B, d]."""
        graph = self._needs_graph(x)
        b, d = x.shape
        estimator = self.estimator
        slogdet = estimator.kind == "exact" or (self.exact_eval and d <= EXACT_MAX_FEATURES)
        if self.exact_eval and not slogdet:
            return self._value_and_exact_series(x, weights, graph)
        hutchinson = not (slogdet or self.exact_trace)
        if hutchinson and isinstance(self.g, LipschitzMLP) and (self.neumann or not graph):
            return self._value_and_ladj_closed_form(self.g, x, weights, graph, estimator)
        # g runs once on k stacked copies of x: copy 0 gives y, the others carry the
        # probe vectors of the vector-Jacobian products (no Python loop over the batch)
        copies = d if slogdet or self.exact_trace else self.samples
        with torch.enable_grad():
            xi = x if x.requires_grad else x.detach().requires_grad_(True)
            stacked = xi.expand(copies, b, d).reshape(copies * b, d)
            gx = self.g(stacked, weights)
            y = xi + gx[:b]
            if slogdet or self.exact_trace:
                jac = self._jacobian(gx, stacked, b, d, create_graph=graph)
                ladj = self._ladj_from_jacobian(jac, graph, slogdet, estimator)
            else:
                ladj = self._ladj_hutchinson(gx, stacked, b, d, graph, estimator, weights)
        if not graph:
            y, ladj = y.detach(), ladj.detach()
        return y, ladj

    def _value_and_ladj_closed_form(
        self,
        g: LipschitzMLP,
        x: Tensor,
        weights: list[Tensor],
        graph: bool,
        estimator: Estimator,
    ) -> tuple[Tensor, Tensor]:
        """The Hutchinson estimate when no graph goes through the power series (eval, or
        ``grad=neumann``): every (Jᵀ)^k v is a closed-form product of the MLP's factors
        (:class:`~flowspec.runtime.mlp_jacobian.Linearization`), the same numbers
        autograd's vector-Jacobian products give, without its engine; with ``neumann``
        the surrogate's gradient is then taken as in :meth:`_ladj_hutchinson`."""
        b, d = x.shape
        s = self.samples
        if graph:
            with torch.enable_grad():
                xi = x if x.requires_grad else x.detach().requires_grad_(True)
                xs = xi.expand(s, b, d).reshape(s * b, d)
                lin = Linearization(g, xs, weights, graph=True)
                y = xi + lin.value[:b]
            shape: tuple[int, ...] = (s * b, d)
        else:
            lin = Linearization(g, x, weights)
            y = x + lin.value
            shape = (s, b, d)  # the probes of one sample broadcast against its factors
        if self.gaussian:
            v = torch.randn(shape, dtype=x.dtype, device=x.device)
        else:
            v = torch.randint(0, 2, shape, dtype=x.dtype, device=x.device).mul_(2).sub_(1)
        n, omega = estimator.weights()
        w = v
        ladj = x.new_zeros(v.shape[:-1])
        q = torch.zeros_like(v) if graph else None
        for k in range(1, n + 1):
            if q is not None:
                q = q.add_(w, alpha=omega[k - 1] * k)
            w = lin.vjp(w)
            ladj = ladj.add_((w * v).sum(-1), alpha=omega[k - 1])
        value = ladj.reshape(s, b).mean(0)
        if q is None:
            return y.detach(), value
        with torch.enable_grad():
            return y, NeumannInForward.attach(self, value, lin.value, xs, v, q, weights, lin)

    def _jacobian(self, gx: Tensor, xs: Tensor, b: int, d: int, create_graph: bool) -> Tensor:
        # copy i of the batch gets the cotangent e_i, so its gradient is row i of J_g
        cot = self._eye.to(gx.dtype).unsqueeze(1).expand(d, b, d).reshape(d * b, d)
        (rows,) = torch.autograd.grad(gx, xs, cot, create_graph=create_graph, retain_graph=True)
        return rows.reshape(d, b, d).transpose(0, 1)  # [B, i, j] = ∂g_i/∂x_j

    def _value_and_exact_series(
        self, x: Tensor, weights: list[Tensor], graph: bool
    ) -> tuple[Tensor, Tensor]:
        """y and Σ_{k=1}^{n} (−1)^{k+1}/k · tr(J_g^k), n = ``eval_terms``, each trace the
        exact Σ_i e_iᵀ (J_gᵀ)^k e_i: the probes e_i go through in chunks of copies of the
        batch, so memory is bounded whatever d is, and nothing is random."""
        b, d = x.shape
        n = self.eval_terms
        coef = [(-1) ** (k + 1) / k for k in range(1, n + 1)]
        chunk = max(1, min(d, _CHUNK_ELEMENTS // max(1, b * d)))
        ladj = x.new_zeros(b)
        with torch.enable_grad():
            xi = x if x.requires_grad else x.detach().requires_grad_(True)
            y = xi + self.g(xi, weights)
            for start in range(0, d, chunk):
                m = min(chunk, d - start)
                stacked = xi.expand(m, b, d).reshape(m * b, d)
                gx = self.g(stacked, weights)
                eye = self._eye[start : start + m].to(x.dtype)
                v = eye.unsqueeze(1).expand(m, b, d).reshape(m * b, d)
                w = v
                for k in range(1, n + 1):
                    (w,) = torch.autograd.grad(
                        gx, stacked, w, create_graph=graph, retain_graph=True
                    )
                    ladj = ladj + coef[k - 1] * (w * v).sum(-1).reshape(m, b).sum(0)
        if not graph:
            y, ladj = y.detach(), ladj.detach()
        return y, ladj

    def _ladj_from_jacobian(
        self, jac: Tensor, graph: bool, slogdet: bool, estimator: Estimator
    ) -> Tensor:
        if slogdet:
            eye = self._eye.to(jac.dtype)
            return torch.linalg.slogdet(eye + jac)[1]
        n, weights = estimator.weights()
        power = jac
        ladj = weights[0] * jac.diagonal(dim1=-2, dim2=-1).sum(-1)
        for k in range(2, n + 1):
            power = power @ jac
            ladj = ladj + weights[k - 1] * power.diagonal(dim1=-2, dim2=-1).sum(-1)
        if self.neumann and graph:
            # Neumann surrogate tr(M J) with M = Σ_k (−1)^{k+1} ω_k J^{k−1}, M held fixed
            with torch.no_grad():
                j0 = jac.detach()
                m = torch.eye(j0.shape[-1], dtype=j0.dtype, device=j0.device).expand_as(j0)
                acc, power = m.clone(), m
                for k in range(2, n + 1):
                    power = power @ j0
                    acc = acc + (weights[k - 1] * k) * power
            surrogate = (acc.transpose(-1, -2) * jac).sum((-2, -1))
            ladj = ladj.detach() + surrogate - surrogate.detach()
        return ladj

    def _ladj_hutchinson(
        self,
        gx: Tensor,
        xs: Tensor,
        b: int,
        d: int,
        graph: bool,
        estimator: Estimator,
        net_weights: list[Tensor],
    ) -> Tensor:
        s = self.samples
        if self.gaussian:
            v = torch.randn_like(xs)
        else:
            v = torch.randint_like(xs, 0, 2).mul_(2).sub_(1)
        n, omega = estimator.weights()
        neumann = self.neumann and graph
        # w_k = (Jᵀ)^k v; the value needs w_1..w_N, the Neumann vector w_0..w_{N−1}
        w = v
        ladj = xs.new_zeros(s * b)
        q = torch.zeros_like(v) if neumann else None
        for k in range(1, n + 1):
            if q is not None:  # neumann
                q = q + (omega[k - 1] * k) * w
            (w,) = torch.autograd.grad(
                gx, xs, w, create_graph=graph and not neumann, retain_graph=True
            )
            ladj = ladj + omega[k - 1] * (w * v).sum(-1)
        if neumann:
            assert q is not None
            value = ladj.detach().reshape(s, b).mean(0)
            return NeumannInForward.attach(self, value, gx, xs, v, q, net_weights)
        return ladj.reshape(s, b).mean(0)


__all__ = ["Residual"]
