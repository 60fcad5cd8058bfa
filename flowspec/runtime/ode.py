"""The continuous normalizing flow block (FFJORD).

Chen, Rubanova, Bettencourt, Duvenaud 2018, *Neural Ordinary Differential Equations*,
arXiv:1806.07366; Grathwohl, Chen, Bettencourt, Sutskever, Duvenaud 2019, *FFJORD:
Free-form Continuous Dynamics for Scalable Reversible Generative Models*, arXiv:1810.01367.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, cast

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchdiffeq import odeint, odeint_adjoint

from flowspec.kinds.options import Choice, word
from flowspec.kinds.words import FIXED_STEP_SOLVERS
from flowspec.runtime.base import Bijection
from flowspec.runtime.nets import build_net
from flowspec.runtime.ode_nets import ConcatTime, DynamicsMLP, FourierTime, time_embedding

#: torchdiffeq's fixed-grid solvers; they take ``steps`` equal steps over [0, t]
FIXED_GRID = frozenset(FIXED_STEP_SOLVERS)
#: elements (probe copies × batch × features) of one chunk of the exact trace's probes
_CHUNK_ELEMENTS = 1 << 22


class _UniformGrid:
    """torchdiffeq's ``grid_constructor``: exactly ``steps`` equal steps from t[0] to t[-1].
    (Its ``step_size`` option takes ceil(T/h) steps, one too many when T/h rounds up, the
    last one a sliver.)  A class, not a closure, so the block pickles."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def __call__(self, func: Any, y0: Any, t: Tensor) -> Tensor:
        grid = torch.linspace(t[0].item(), t[-1].item(), self.steps + 1, dtype=t.dtype)
        grid = grid.to(t.device)
        grid[0], grid[-1] = t[0], t[-1]  # exactly the ends torchdiffeq asserts
        return grid


def _step_norm(state: tuple[Tensor, ...]) -> Tensor:
    """The error norm of step-size control (max over the state's parts of their RMS),
    detached: the steps are then constants to autograd, so one sample's gradient never
    flows through step sizes that its batch-mates chose (the batch shares the steps)."""
    return torch.stack([s.detach().pow(2).mean().sqrt() for s in state]).max()


class _Dynamics(nn.Module):
    """The right-hand side of the augmented ODE.

    The state tuple says what to integrate: ``(x,)`` value only; ``(x, a)`` with
    da/dt = tr(∂f/∂x), exactly, or, given Hutchinson probes e [S, B, *shape],
    da/dt = mean_s eₛᵀ(∂f/∂x)eₛ.  Two more parts ``(…, k, j)`` integrate Finlay et al.'s
    regularisers: dk/dt = ‖f‖² and dj/dt = ‖∂f/∂x‖_F² (exact: the squares of the d rows
    the trace computes) or mean_s ‖eₛᵀ∂f/∂x‖² (Hutchinson, the trace's probes), per
    sample.  The probes are not part of the state (see :class:`_Probed`).
    """

    def __init__(
        self,
        net: nn.Module,
        shape: tuple[int, ...],
        flat: bool,
        embed: ConcatTime | FourierTime | None,
    ) -> None:
        super().__init__()
        self.net = net
        self.shape = shape
        self.flat = flat
        self.features = math.prod(shape)
        #: the time embedding appended to the input; ``None``: the net reads t itself
        self.embed = embed
        #: evaluations of the right-hand side so far (the solver's NFE, summed)
        self.calls = 0
        #: an mlp whose first layer reads [x, e(t)]: e(t) enters it as a bias instead
        first = net[0] if isinstance(net, nn.Sequential) and len(net) > 0 else None
        self.fold = (
            flat
            and embed is not None
            and isinstance(first, nn.Linear)
            and first.in_features == self.features + embed.features
        )

    def velocity(self, t: Tensor, x: Tensor) -> Tensor:
        """f(x, t).  For an mlp the first layer W·[x, e(t)] + b is computed as
        W_x·x + (W_e·e(t) + b): the same map without concatenating e(t) to every sample
        (and without its columns in the layer's forward and backward products)."""
        b = x.shape[0]
        if self.embed is None:
            return self.net(x.reshape(b, -1), t).reshape(x.shape)
        e = self.embed(t).to(x.dtype)
        k = e.shape[0]
        if self.fold:
            # fold is set only for an nn.Sequential whose first layer is an nn.Linear
            net = cast(nn.Sequential, self.net)
            first, d = cast(nn.Linear, net[0]), self.features
            w = first.weight
            shift = w[:, d:] @ e if first.bias is None else torch.addmv(first.bias, w[:, d:], e)
            h = F.linear(x.reshape(b, d), w[:, :d], shift)
            for layer in itertools.islice(net, 1, None):
                h = layer(h)
            return h.reshape(x.shape)
        if self.flat:
            inp = torch.cat([x.reshape(b, -1), e.expand(b, k)], dim=1)
        else:
            tt = e.reshape(1, k, *(1 for _ in self.shape[1:])).expand(b, k, *self.shape[1:])
            inp = torch.cat([x, tt], dim=1)
        return self.net(inp).reshape(x.shape)

    def _exact_trace(
        self, t: Tensor, xi: Tensor, graph: bool, frobenius: bool
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """f(x, t), tr(∂f/∂x) = Σ_i e_iᵀ(∂f/∂x)e_i and (``frobenius``) ‖∂f/∂x‖_F²: f is
        evaluated once (``torch.func.vjp``) and its vector-Jacobian product taken with the
        d cotangents e_i at once (``torch.func.vmap``, in chunks of cotangents so memory
        stays bounded).  Measured faster per evaluation than d copies of the batch with one
        backward pass, than ``is_grads_batched``, than forward mode and than a loop of d
        VJPs (``benchmarks/bench_ode.py``); differentiable for training and the adjoint."""
        b, d = xi.shape[0], self.features
        # annotated as a 2- or 3-tuple (has_aux); without aux it is (f(x), vjp_fn)
        pulled = torch.func.vjp(lambda v: self.velocity(t, v), xi)
        fx, vjp = pulled[0], pulled[1]
        chunk = max(1, min(d, _CHUNK_ELEMENTS // max(1, b * d)))
        cot = torch.eye(d, dtype=xi.dtype, device=xi.device).unsqueeze(1).expand(d, b, d)
        (rows,) = torch.func.vmap(vjp, chunk_size=chunk)(cot.reshape(d, *fx.shape))
        rows = rows.reshape(d, b, d)
        trace = rows.diagonal(dim1=0, dim2=2).sum(-1)
        frob = rows.pow(2).sum((0, 2)) if frobenius else None
        return fx, trace, frob

    def _hutchinson(
        self, t: Tensor, xi: Tensor, probes: Tensor, graph: bool, frobenius: bool
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """f(x, t), mean_s eₛᵀ(∂f/∂x)eₛ and (``frobenius``) mean_s ‖eₛᵀ∂f/∂x‖²: one
        vector-Jacobian product per probe, S probes as S copies of the batch."""
        b, d, s = xi.shape[0], self.features, probes.shape[0]
        if s == 1:  # no copies: f and its VJP on the batch itself
            fx = self.velocity(t, xi)
            (vjp,) = torch.autograd.grad(fx, xi, probes[0], create_graph=graph)
            vjp, e = vjp.reshape(b, d), probes.reshape(b, d)
            trace = (vjp * e).sum(-1)
            return fx, trace, vjp.pow(2).sum(-1) if frobenius else None
        copies = xi.unsqueeze(0).expand(s, *xi.shape).reshape(s * b, *xi.shape[1:])
        fx = self.velocity(t, copies)
        (vjp,) = torch.autograd.grad(fx, copies, probes.reshape(fx.shape), create_graph=graph)
        vjp = vjp.reshape(s, b, d)
        trace = (vjp * probes.reshape(s, b, d)).sum(-1).mean(0)
        return fx[:b], trace, vjp.pow(2).sum(-1).mean(0) if frobenius else None

    def forward(
        self, t: Tensor, state: tuple[Tensor, ...], probes: Tensor | None = None
    ) -> tuple[Tensor, ...]:
        self.calls += 1
        x = state[0]
        if len(state) == 1:
            return (self.velocity(t, x),)
        graph = torch.is_grad_enabled()  # the adjoint's backward and training need a graph
        regularize = len(state) == 4
        with torch.enable_grad():
            # without a graph (the adjoint's forward solve) x may be a view made under
            # no_grad of a tensor that requires grad: differentiate a fresh leaf instead
            xi = x if x.requires_grad and graph else x.detach().requires_grad_(True)
            if probes is None:
                dx, trace, frob = self._exact_trace(t, xi, graph, regularize)
            else:
                dx, trace, frob = self._hutchinson(t, xi, probes, graph, regularize)
        out: tuple[Tensor, ...] = (dx, trace)
        if regularize:
            assert frob is not None
            out = (dx, trace, dx.reshape(x.shape[0], -1).pow(2).sum(-1), frob)
        if not graph:
            out = tuple(o.detach() for o in out)
        return out


class _Probed(nn.Module):
    """The right-hand side of one Hutchinson call: ``dynamics`` with that call's probes
    e [S, B, *shape], drawn once and fixed along the trajectory.

    The probes live here, not in the solver's state: de/dt = 0 would only make every
    Runge–Kutta stage, error estimate and interpolation of the adaptive solver work on a
    state twice as large (and the adjoint integrate the probes' meaningless gradient).
    ``odeint_adjoint`` keeps this module for its backward pass, so the adjoint's
    re-evaluations see the same probes even when the block is called again before
    backward.  Calls go through ``dynamics.__call__``, so its counter and hooks see them.
    """

    def __init__(self, dynamics: _Dynamics, probes: Tensor) -> None:
        super().__init__()
        self.dynamics = dynamics
        self.probes = probes

    def forward(self, t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        return self.dynamics(t, state, self.probes)


class ODE(Bijection):
    """A continuous normalizing flow: x(0) = x, dx/dt = f(x, t), y = x(t₁).

    Math: y = x + ∫₀^{t₁} f(x(t), t) dt; ladj = log|det ∂y/∂x| = ∫₀^{t₁} tr(∂f/∂x) dt
    (the instantaneous change of variables, Chen et al. 2018), integrated jointly with x
    as the augmented state [x, a], da/dt = tr(∂f/∂x).  ``trace=exact`` computes the trace
    by d vector-Jacobian products (batched by ``torch.func.vmap``); ``trace=hutchinson``
    estimates it by eᵀ(∂f/∂x)e with e Rademacher or Gaussian, ``samples`` probes drawn once
    per call and fixed along the trajectory (Grathwohl et al. 2019), held by the call's
    right-hand side, so the solver integrates and error-controls [x, a] only.  Inverse: integrate
    from t₁ back to 0; its ladj is the integral of the trace along that path, −ladj(x) up
    to the solver's tolerance.

    f = build_net(net, [d + k] → [d]) with the time embedding e(t) of ``time`` appended
    as k features for ``mlp`` (any input shape, flattened; ``concat``: e(t) = [t],
    ``fourier(features=K)``: cos(jπt), sin(jπt), j = 1 … K); for ``conv``/``resnet`` on
    [C, H, W] as k channels: [C + k, H, W] → [C, H, W].  ``time=concatsquash`` and
    ``lipschitz=L`` build a :class:`~flowspec.runtime.ode_nets.DynamicsMLP` (gated layers;
    certified spectral norms with Lip_x f(·, t) ≤ L, so Lip(F), Lip(F⁻¹) ≤ exp(L·t₁) by
    Grönwall's inequality).  The zero-initialised last layer makes f ≡ 0, so the block
    starts at the identity.

    ``regularize=finlay(kinetic=λ_K, jacobian=λ_J)``: a forward call in training mode
    also integrates, per sample, ∫‖f‖² dt and ∫‖∂f/∂x‖_F² dt (exact with the exact trace,
    else Hutchinson's mean_s ‖eₛᵀ∂f/∂x‖² with the trace's probes), and
    :meth:`regularization` returns λ_K·mean + λ_J·mean of them (Finlay, Jacobsen, Nurbekyan,
    Oberman 2020, How to train your neural ODE, arXiv:2002.02798).

    ``solver`` is a torchdiffeq method; adaptive ones use ``rtol``/``atol`` on the whole
    state (so the log-det is error-controlled too, and ``transform``, which integrates x
    alone, agrees with ``forward`` to the tolerance, not bit for bit), fixed-grid ones
    (``euler``, ``rk4``, …) take ``steps`` equal steps (default 20) and ignore the
    tolerances (but for ``implicit_adams``' corrector), so their inverse matches only up
    to the discretisation error, which shrinks as steps^-order.  ``adjoint=true`` uses
    ``odeint_adjoint`` (constant memory in the number of steps).  :attr:`nfe` is the
    number of function evaluations of the last call, forward and backward.

    Exact evaluation (``exact_eval = True``, set by ``flowspec.exact(flow)`` or
    ``flow.log_prob(x, exact=True)``) integrates the exact trace whatever ``trace`` says,
    so the log-det is deterministic and exact up to the solver's error.

    References: Chen et al. 2018, Neural Ordinary Differential Equations, arXiv:1806.07366;
    Grathwohl et al. 2019, FFJORD, arXiv:1810.01367.

    Args:
        in_shapes: ``[shape]``.
        net: the dynamics net (``mlp``; ``conv``/``resnet`` for [C, H, W]).
        t: the integration time t₁ > 0.
        solver, rtol, atol: the ODE solver and its tolerances (adaptive solvers).
        steps: the number of equal steps of a fixed-grid solver.
        trace: ``exact`` | ``hutchinson(samples, noise)``.
        adjoint: integrate the backward pass with the adjoint method.
        time: ``concat`` | ``fourier(features=K)`` | ``concatsquash``.
        regularize: ``none`` | ``finlay(kinetic=λ_K, jacobian=λ_J)``.
        lipschitz: L, the certified bound of Lip_x f (``None``: unconstrained).
    """

    _span: Tensor  # buffers: the integration interval [0, t₁] and its reverse
    _back: Tensor

    def __init__(
        self,
        in_shapes: list[tuple[int, ...]],
        net: Choice,
        t: float = 1.0,
        solver: Choice | str = "dopri5",
        steps: int = 20,
        rtol: float = 1e-5,
        atol: float = 1e-5,
        trace: Choice | str = "hutchinson",
        adjoint: bool = True,
        time: Choice | str = "concat",
        regularize: Choice | str = "none",
        lipschitz: float | None = None,
        **options: Any,
    ) -> None:
        super().__init__(in_shapes)
        (shape,) = self.in_shapes
        d = math.prod(shape)
        flat = word(net) == "mlp"
        self.time = time if isinstance(time, Choice) else Choice(str(time))
        self.lipschitz = None if lipschitz is None else float(lipschitz)
        if flat and (self.lipschitz is not None or self.time.kind == "concatsquash"):
            assert isinstance(net, Choice)
            o = net.options
            f: nn.Module = DynamicsMLP(
                d, list(o["hidden"]), o["act"], o.get("init", "zero"), self.time, self.lipschitz
            )
            embed = None
        elif self.lipschitz is not None or self.time.kind == "concatsquash":
            raise ValueError(
                f"time={self.time.kind} and lipschitz= need net=mlp, got net={word(net)}"
            )
        else:
            embed = time_embedding(self.time)
            k = embed.features
            if flat:
                f = build_net(net, (d + k,), (d,))
            else:
                if len(shape) != 3:
                    raise ValueError(
                        f"net={word(net)} needs a [C, H, W] tensor, got {list(shape)}"
                    )
                f = build_net(net, (shape[0] + k, *shape[1:]), shape)
        self.dynamics = _Dynamics(f, shape, flat, embed)
        reg = regularize if isinstance(regularize, Choice) else Choice(str(regularize))
        self.regularize = reg.kind == "finlay"
        self.kinetic_weight = float(reg.get("kinetic", 0.0))
        self.jacobian_weight = float(reg.get("jacobian", 0.0))
        #: per sample, ∫‖f‖² dt and ∫‖∂f/∂x‖_F² dt (or its estimate) of the last forward
        #: call that integrated them (training mode with ``regularize``), else ``None``
        self.kinetic_energy: Tensor | None = None
        self.jacobian_norm: Tensor | None = None
        self.t1 = float(t)
        self.method = word(solver)
        self.rtol, self.atol = float(rtol), float(atol)
        self.steps = int(steps)
        if self.method in FIXED_GRID:
            self.options: dict[str, Any] | None = {"grid_constructor": _UniformGrid(self.steps)}
        else:
            self.options = {"norm": _step_norm}
        self.exact_trace = word(trace) == "exact"
        self.samples = int(trace.get("samples", 1)) if isinstance(trace, Choice) else 1
        noise = trace.get("noise", "rademacher") if isinstance(trace, Choice) else "rademacher"
        self.gaussian = word(noise) == "gaussian"
        self.adjoint = bool(adjoint)
        #: exact evaluation switch, set by ``flowspec.exact(flow)``
        self.exact_eval = False
        self._calls_before = self._calls_after = 0
        self.register_buffer("_span", torch.tensor([0.0, self.t1]), persistent=False)
        self.register_buffer("_back", torch.tensor([self.t1, 0.0]), persistent=False)

    @property
    def nfe(self) -> tuple[int, int]:
        """(forward, backward) function evaluations of the last call: those its solve
        took, and those the backward pass has taken since (the adjoint's re-integration;
        0 without ``adjoint``, whose backward runs through the recorded steps)."""
        calls = self.dynamics.calls
        return self._calls_after - self._calls_before, calls - self._calls_after

    def _solve(
        self, state: tuple[Tensor, ...], span: Tensor, probes: Tensor | None = None
    ) -> tuple[Tensor, ...]:
        self._calls_before = self.dynamics.calls
        certify = getattr(self.dynamics.net, "certify", None)
        if certify is not None:
            certify()
        func: nn.Module = self.dynamics if probes is None else _Probed(self.dynamics, probes)
        try:
            return self._integrate(func, state, span)
        finally:
            self._calls_after = self.dynamics.calls

    def _integrate(
        self, func: nn.Module, state: tuple[Tensor, ...], span: Tensor
    ) -> tuple[Tensor, ...]:
        span = span.to(state[0].dtype)
        kw = {"rtol": self.rtol, "atol": self.atol, "method": self.method, "options": self.options}
        if self.adjoint:
            # the adjoint needs only the net's parameters
            out = odeint_adjoint(func, state, span, adjoint_params=tuple(self.parameters()), **kw)
        else:
            out = odeint(func, state, span, **kw)
        return tuple(o[-1] for o in out)

    def _augmented(
        self, x: Tensor, span: Tensor, regularize: bool = False
    ) -> tuple[Tensor, Tensor]:
        a0 = x.new_zeros(x.shape[0])
        extra = (a0.clone(), a0.clone()) if regularize else ()
        probes = None
        if not (self.exact_trace or self.exact_eval):
            probes = x.new_empty(self.samples, *x.shape)
            if self.gaussian:
                probes.normal_()
            else:
                probes.bernoulli_(0.5).mul_(2).sub_(1)
        y, a, *reg = self._solve((x, a0, *extra), span, probes)
        if regularize:
            self.kinetic_energy, self.jacobian_norm = reg
        return y, a

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        regularize = self.regularize and self.training
        if not regularize:
            self.kinetic_energy = self.jacobian_norm = None
        return self._augmented(x, self._span, regularize)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self._augmented(y, self._back)

    def regularization(self) -> Tensor:
        """λ_K·mean_b ∫‖f‖² dt + λ_J·mean_b ∫‖∂f/∂x‖_F² dt of the last forward call
        (Finlay et al. 2020, How to train your neural ODE, arXiv:2002.02798), differentiable;
        0 when that call integrated none (``regularize=none``, or eval mode)."""
        if self.kinetic_energy is None or self.jacobian_norm is None:
            return self._span.new_zeros(())
        return (
            self.kinetic_weight * self.kinetic_energy.mean()
            + self.jacobian_weight * self.jacobian_norm.mean()
        )

    def transform(self, x: Tensor) -> Tensor:
        return self._solve((x,), self._span)[0]

    def inverse_transform(self, y: Tensor) -> Tensor:
        return self._solve((y,), self._back)[0]

    def extra_repr(self) -> str:
        control = (
            f"steps={self.steps}"
            if self.method in FIXED_GRID
            else f"rtol={self.rtol}, atol={self.atol}"
        )
        return (
            f"in_shapes={self.in_shapes}, t={self.t1}, solver={self.method}, {control}, "
            f"exact_trace={self.exact_trace}, adjoint={self.adjoint}, time={self.time}"
            + ("" if self.lipschitz is None else f", lipschitz={self.lipschitz}")
            + (
                f", regularize=finlay(kinetic={self.kinetic_weight}, "
                f"jacobian={self.jacobian_weight})"
                if self.regularize
                else ""
            )
        )

    def lipschitz_bound(self) -> float | None:
        """exp(L_f·t) with L_f the certified bound of the current net (≤ exp(L·t)), or
        ``None`` when the net is not Lipschitz-constrained."""
        net = self.dynamics.net
        if self.lipschitz is None or not isinstance(net, DynamicsMLP):
            return None
        return math.exp(net.lipschitz_bound() * self.t1)


__all__ = ["ODE"]
