"""The continuous normalizing flow block (FFJORD).

Chen, Rubanova, Bettencourt, Duvenaud 2018, *Neural Ordinary Differential Equations*,
arXiv:1806.07366; Grathwohl, Chen, Bettencourt, Sutskever, Duvenaud 2019, *FFJORD:
Free-form Continuous Dynamics for Scalable Reversible Generative Models*, arXiv:1810.01367.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torchdiffeq import odeint, odeint_adjoint

from flowspec.kinds.options import Choice
from flowspec.kinds.words import FIXED_STEP_SOLVERS
from flowspec.runtime.base import Bijection
from flowspec.runtime.nets import build_net

#: torchdiffeq's fixed-grid solvers; they take ``steps`` equal steps over [0, t]
FIXED_GRID = frozenset(FIXED_STEP_SOLVERS)
#: elements (probe copies × batch × features) of one chunk of the exact trace's probes
_CHUNK_ELEMENTS = 1 << 22


def _word(value: Choice | str) -> str:
    return value.kind if isinstance(value, Choice) else str(value)


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

    The state tuple says what to integrate, so one module serves every call, and the
    adjoint's later re-evaluations see the same noise: ``(x,)`` value only; ``(x, a)``
    with da/dt = tr(∂f/∂x) exactly; ``(x, a, e)`` with da/dt = mean_s eₛᵀ(∂f/∂x)eₛ and
    de/dt = 0 (the Hutchinson probes ride along in the state, fixed for the call).
    """

    def __init__(self, net: nn.Module, shape: tuple[int, ...], flat: bool) -> None:
        super().__init__()
        self.net = net
        self.shape = shape
        self.flat = flat
        self.features = math.prod(shape)
        #: evaluations of the right-hand side so far (the solver's NFE, summed)
        self.calls = 0

    def velocity(self, t: Tensor, x: Tensor) -> Tensor:
        b = x.shape[0]
        if self.flat:
            inp = torch.cat([x.reshape(b, -1), t.to(x.dtype).expand(b, 1)], dim=1)
        else:
            tt = t.to(x.dtype).expand(b, 1, *self.shape[1:])
            inp = torch.cat([x, tt], dim=1)
        return self.net(inp).reshape(x.shape)

    def _exact_trace(self, t: Tensor, xi: Tensor, graph: bool) -> tuple[Tensor, Tensor]:
        """f(x, t) and tr(∂f/∂x) = Σ_i e_iᵀ(∂f/∂x)e_i: copy i of the batch carries the
        cotangent e_i (row i of ∂f/∂x), in chunks of copies so memory stays bounded."""
        b, d = xi.shape[0], self.features
        chunk = max(1, min(d, _CHUNK_ELEMENTS // max(1, b * d)))
        dx, trace = None, None
        for start in range(0, d, chunk):
            m = min(chunk, d - start)
            copies = xi.unsqueeze(0).expand(m, *xi.shape).reshape(m * b, *xi.shape[1:])
            fx = self.velocity(t, copies)
            rows_of_eye = xi.new_zeros(m, d)
            picked = torch.arange(m, device=xi.device)
            rows_of_eye[picked, picked + start] = 1.0
            cot = rows_of_eye.unsqueeze(1).expand(m, b, d).reshape(fx.shape)
            (rows,) = torch.autograd.grad(fx, copies, cot, create_graph=graph)
            rows = rows.reshape(m, b, d)[:, :, start : start + m]
            part = rows.diagonal(dim1=0, dim2=2).sum(-1)  # Σ_i ∂f_i/∂x_i over the chunk
            trace = part if trace is None else trace + part
            if dx is None:
                dx = fx[:b]
        return dx, trace

    def forward(self, t: Tensor, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        self.calls += 1
        x = state[0]
        if len(state) == 1:
            return (self.velocity(t, x),)
        graph = torch.is_grad_enabled()  # the adjoint's backward and training need a graph
        b, d = x.shape[0], self.features
        with torch.enable_grad():
            xi = x if x.requires_grad else x.detach().requires_grad_(True)
            if len(state) == 2:
                dx, trace = self._exact_trace(t, xi, graph)
            else:
                e = state[2]  # [S, B, *shape]
                s = e.shape[0]
                copies = xi.unsqueeze(0).expand(s, *xi.shape).reshape(s * b, *xi.shape[1:])
                fx = self.velocity(t, copies)
                (vjp,) = torch.autograd.grad(fx, copies, e.reshape(fx.shape), create_graph=graph)
                trace = (vjp.reshape(s, b, d) * e.reshape(s, b, d)).sum(-1).mean(0)
                dx = fx[:b]
        if not graph:
            dx, trace = dx.detach(), trace.detach()
        out = (dx, trace)
        return out if len(state) == 2 else (*out, torch.zeros_like(state[2]))


class ODE(Bijection):
    """A continuous normalizing flow: x(0) = x, dx/dt = f(x, t), y = x(t₁).

    Math: y = x + ∫₀^{t₁} f(x(t), t) dt; ladj = log|det ∂y/∂x| = ∫₀^{t₁} tr(∂f/∂x) dt
    (the instantaneous change of variables, Chen et al. 2018), integrated jointly with x
    as the augmented state [x, a], da/dt = tr(∂f/∂x).  ``trace=exact`` computes the trace
    by d vector-Jacobian products (batched as d copies of the batch); ``trace=hutchinson``
    estimates it by eᵀ(∂f/∂x)e with e Rademacher or Gaussian, ``samples`` probes drawn once
    per call and fixed along the trajectory (Grathwohl et al. 2019).  Inverse: integrate
    from t₁ back to 0; its ladj is the integral of the trace along that path, −ladj(x) up
    to the solver's tolerance.

    f = build_net(net, [d + 1] → [d]) with time appended as a feature for ``mlp`` (any
    input shape, flattened); for ``conv``/``resnet`` on [C, H, W] a time channel is
    appended: [C + 1, H, W] → [C, H, W].  The zero-initialised last layer makes f ≡ 0, so
    the block starts at the identity.

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
    """

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
        **options: Any,
    ) -> None:
        super().__init__(in_shapes)
        (shape,) = self.in_shapes
        d = math.prod(shape)
        flat = _word(net) == "mlp"
        if flat:
            f = build_net(net, (d + 1,), (d,))
        else:
            if len(shape) != 3:
                raise ValueError(f"net={_word(net)} needs a [C, H, W] tensor, got {list(shape)}")
            f = build_net(net, (shape[0] + 1, *shape[1:]), shape)
        self.dynamics = _Dynamics(f, shape, flat)
        self.t1 = float(t)
        self.method = _word(solver)
        self.rtol, self.atol = float(rtol), float(atol)
        self.steps = int(steps)
        if self.method in FIXED_GRID:
            self.options: dict[str, Any] | None = {"grid_constructor": _UniformGrid(self.steps)}
        else:
            self.options = {"norm": _step_norm}
        self.exact_trace = _word(trace) == "exact"
        self.samples = int(trace.get("samples", 1)) if isinstance(trace, Choice) else 1
        noise = trace.get("noise", "rademacher") if isinstance(trace, Choice) else "rademacher"
        self.gaussian = _word(noise) == "gaussian"
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

    def _solve(self, state: tuple[Tensor, ...], span: Tensor) -> tuple[Tensor, ...]:
        self._calls_before = self.dynamics.calls
        try:
            return self._integrate(state, span)
        finally:
            self._calls_after = self.dynamics.calls

    def _integrate(self, state: tuple[Tensor, ...], span: Tensor) -> tuple[Tensor, ...]:
        span = span.to(state[0].dtype)
        kw = {"rtol": self.rtol, "atol": self.atol, "method": self.method, "options": self.options}
        if self.adjoint:
            # the adjoint needs only the net's parameters, not the probes' "gradient"
            out = odeint_adjoint(
                self.dynamics, state, span, adjoint_params=tuple(self.parameters()), **kw
            )
        else:
            out = odeint(self.dynamics, state, span, **kw)
        return tuple(o[-1] for o in out)

    def _augmented(self, x: Tensor, span: Tensor) -> tuple[Tensor, Tensor]:
        a0 = x.new_zeros(x.shape[0])
        if self.exact_trace or self.exact_eval:
            y, a = self._solve((x, a0), span)
        else:
            probes = x.new_empty(self.samples, *x.shape)
            if self.gaussian:
                probes.normal_()
            else:
                probes.bernoulli_(0.5).mul_(2).sub_(1)
            y, a, _ = self._solve((x, a0, probes), span)
        return y, a

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._augmented(x, self._span)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        return self._augmented(y, self._back)

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
            f"exact_trace={self.exact_trace}, adjoint={self.adjoint}"
        )


__all__ = ["ODE"]
