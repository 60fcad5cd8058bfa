"""The ``Flow`` base class every generated module derives from.

A flow F maps data x to latent z (the normalizing direction) and
log p(x) = log q(F(x)) + log|det J_F(x)| with q the latent (base) density::

    z, ladj = flow(x)                  # x: [B, *input_shape]; ladj: [B]
    x, ladj_inv = flow.inverse(z)
    flow.log_prob(x)                   # [B]
    flow.sample(n)                     # [n, *input_shape], no gradients
    flow.rsample(n)                    # reparameterised: gradients reach the parameters
    flow.sample_and_log_prob(n)        # x = F⁻¹(z), z ~ q, and log p(x) = log q(z) − ladj_inv

With several outputs, ``z`` is a tuple in ``output`` order and ``inverse`` takes it.
A flow with ``context y: [d]`` models p(x | y): every entry point takes ``context=``,
one row per batch element or one unbatched ``[d]`` broadcast to the batch.  The module
is data → latent whatever the spec's ``direction``: a ``direction generative`` spec's
blocks run backwards in ``forward`` and as written in ``inverse``, so sampling (and
``sample_and_log_prob``, the variational-inference pass) needs no iterative inverse.
The generated subclass supplies straight-line ``forward``, ``inverse``, ``transform``
and ``inverse_transform``.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from flowspec.kinds.options import Choice
from flowspec.runtime import validate as _validate
from flowspec.runtime.exact import exact as _exact

_LOG_2PI = math.log(2 * math.pi)


class Flow(nn.Module):
    """A compiled normalizing flow (an ``nn.Module``)."""

    #: set by the generated subclass
    FLOW_NAME: str = ""
    SPEC_HASH: str = ""
    #: set by ``flowspec.compile`` (not by an imported ``model.py``): the spec's text and
    #: path, which ``flowspec.save`` stores beside the weights
    SPEC_TEXT: str | None = None
    SPEC_FILE: str | None = None
    INPUT_SHAPE: tuple[int, ...] = ()
    OUTPUT_SHAPES: tuple[tuple[int, ...], ...] = ()
    LATENT: Choice = Choice("normal")
    DEQUANTIZE: Choice | None = None
    DATA_READER: str | None = None  # the kind of the one block that reads the data
    CONTEXT_SHAPE: tuple[int, ...] | None = None
    DIRECTION: str = "normalizing"
    #: where blocks outside every ``on`` region are built, and the float type of the
    #: whole module, when ``flowspec compile --device/--dtype`` wrote them in
    DEFAULT_DEVICE: str | None = None
    DTYPE: str | None = None
    #: block attribute → ``line 5`` (its spec location), for run-time errors
    BLOCK_LINES: dict[str, str] = {}
    #: block attribute → the (mapped) device of its ``on`` region
    DEVICES: dict[str, str] = {}

    #: check every entry point's argument (dtype, finiteness, domains); default True
    validate = _validate.switch
    _probe: Tensor  # a buffer (registered in __init__)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # the generated methods check what they are given, so a wrong shape is a clear
        # ValueError rather than a silently dropped feature or an unpacking error
        super().__init_subclass__(**kwargs)
        for name, check in _CHECKS.items():
            if name in cls.__dict__:
                setattr(cls, name, _checked(cls.__dict__[name], check))

    def __init__(self) -> None:
        super().__init__()
        # follows .to(device, dtype) so sample() knows where to draw latents, even for
        # a flow without parameters
        self.register_buffer("_probe", torch.zeros(()), persistent=False)

    def place(self, device: str | torch.device | None, dtype: str | torch.dtype | None) -> None:
        """Build-time placement: each block to its ``on`` region's device (``DEVICES``),
        the others to ``device``; everything to ``dtype`` (a name such as ``"bfloat16"``
        or a torch dtype).  ``None`` leaves that part as it is."""
        dtype_ = getattr(torch, dtype) if isinstance(dtype, str) else dtype
        for attr, _ in self.named_children():
            self.place_block(attr, device, dtype_)
        self._probe = self._probe.to(device=device, dtype=dtype_)

    def place_block(
        self, attr: str, device: str | torch.device | None, dtype: torch.dtype | None
    ) -> None:
        """One block of :meth:`place` (``flowspec.build`` maps an allocation failure to
        the block's spec line)."""
        getattr(self, attr).to(device=self.DEVICES.get(attr) or device, dtype=dtype)

    # ----------------------------------------------------------------- facts

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.INPUT_SHAPE)

    @property
    def output_shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(s) for s in self.OUTPUT_SHAPES)

    @property
    def spec_hash(self) -> str:
        return self.SPEC_HASH

    @property
    def latent(self) -> str:
        return self.LATENT.kind

    @property
    def num_features(self) -> int:
        return math.prod(self.INPUT_SHAPE)

    @property
    def context_shape(self) -> tuple[int, ...] | None:
        """The shape of the ``context`` (without the batch axis), or None."""
        return None if self.CONTEXT_SHAPE is None else tuple(self.CONTEXT_SHAPE)

    @property
    def direction(self) -> str:
        """The spec's ``direction``: ``normalizing`` or ``generative``."""
        return self.DIRECTION

    # --------------------------------------------------------- generated API

    def forward(
        self, x: Tensor, context: Tensor | None = None
    ) -> tuple[Tensor | tuple[Tensor, ...], Tensor]:
        raise NotImplementedError

    def inverse(self, z, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def transform(self, x: Tensor, context: Tensor | None = None):
        return self.forward(x, context)[0]

    def inverse_transform(self, z, context: Tensor | None = None) -> Tensor:
        return self.inverse(z, context)[0]

    # ------------------------------------------------------------ densities

    def _latents(self, z) -> tuple[Tensor, ...]:
        return z if isinstance(z, tuple) else (z,)

    def base_log_prob(self, z) -> Tensor:
        """log q(z), summed over every latent tensor's features: [B]."""
        kind = self.LATENT.kind
        total = None
        for t in self._latents(z):
            flat = t.reshape(t.shape[0], -1)
            if kind == "normal":
                lp = -0.5 * (flat * flat).sum(1) - 0.5 * _LOG_2PI * flat.shape[1]
            elif kind == "logistic":
                lp = -(flat + 2 * nn.functional.softplus(-flat)).sum(1)
            else:  # uniform on [0, 1]^d
                inside = ((flat >= 0) & (flat <= 1)).all(1)
                lp = torch.where(inside, 0.0, -math.inf).to(flat.dtype)
            total = lp if total is None else total + lp
        assert total is not None  # a flow has at least one latent
        return total

    def sample_latent(self, n: int) -> Tensor | tuple[Tensor, ...]:
        device, dtype = self._probe.device, self._probe.dtype
        out = []
        for shape in self.OUTPUT_SHAPES:
            size = (n, *shape)
            if self.LATENT.kind == "normal":
                out.append(torch.randn(size, device=device, dtype=dtype))
            elif self.LATENT.kind == "logistic":
                u = torch.rand(size, device=device, dtype=dtype).clamp(1e-7, 1 - 1e-7)
                out.append(torch.log(u) - torch.log1p(-u))
            else:
                out.append(torch.rand(size, device=device, dtype=dtype))
        return tuple(out) if len(out) > 1 else out[0]

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(
                f"flow `{self.FLOW_NAME}` expects one tensor of shape "
                f"{_batch(self.input_shape)}, got {type(x).__name__}"
            )
        if x.dim() == 0 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(
                f"flow `{self.FLOW_NAME}` expects input of shape "
                f"{_batch(self.input_shape)}, got {list(x.shape)}"
            )

    def _check_latents(self, z: Any) -> None:
        shapes = self.output_shapes
        expected = " and ".join(_batch(s) for s in shapes)
        if len(shapes) > 1:
            if not isinstance(z, (tuple, list)) or len(z) != len(shapes):
                got = f"{len(z)} tensors" if isinstance(z, (tuple, list)) else "one tensor"
                raise ValueError(
                    f"flow `{self.FLOW_NAME}` has {len(shapes)} outputs: the inverse "
                    f"expects a tuple of {len(shapes)} latents, {expected}, got {got}"
                )
            latents = tuple(z)
        else:
            if not isinstance(z, Tensor):
                raise TypeError(
                    f"flow `{self.FLOW_NAME}` has one output: the inverse expects one "
                    f"tensor of shape {expected}, got {type(z).__name__}"
                )
            latents = (z,)
        for i, (t, shape) in enumerate(zip(latents, shapes)):
            if not isinstance(t, Tensor) or t.dim() == 0 or tuple(t.shape[1:]) != shape:
                found = list(t.shape) if isinstance(t, Tensor) else type(t).__name__
                which = f"latent {i} " if len(shapes) > 1 else "its latent "
                raise ValueError(
                    f"flow `{self.FLOW_NAME}`: the inverse expects {which}of shape "
                    f"{_batch(shape)}, got {found}"
                )
        if len({t.shape[0] for t in latents}) > 1:
            raise ValueError(
                f"flow `{self.FLOW_NAME}`: the latents have different batch sizes "
                f"{[t.shape[0] for t in latents]}"
            )

    def _context_args(self, value: Any, context: Any) -> tuple[Tensor, ...]:
        """The extra arguments of a generated method: ``(context,)`` checked and
        broadcast to ``value``'s batch, or ``()`` for a flow without a context."""
        if self.CONTEXT_SHAPE is None:
            self._context(context, 0)  # a context given to a flow without one: TypeError
            return ()
        ctx = self._context(context, _batch_size(value))
        assert ctx is not None  # _context raises for a flow with a context and none given
        if self.__dict__.get("_validate", True):
            _validate.check_context(self, ctx)
        return (ctx,)

    def _context(self, context: Any, n: int) -> Tensor | None:
        """The context for a batch of ``n``: checked against ``context_shape``, and an
        unbatched ``[d]`` (or ``[1, d]``) context broadcast to the batch."""
        shape = self.CONTEXT_SHAPE
        if shape is None:
            if context is not None:
                raise TypeError(
                    f"flow `{self.FLOW_NAME}` has no context, but context= was given; "
                    "declare one in the spec with `context y: [d]`"
                )
            return None
        shape = tuple(shape)
        if context is None:
            raise ValueError(
                f"flow `{self.FLOW_NAME}` models p(x | context): pass context= of shape "
                f"{_batch(shape)} or {list(shape)}"
            )
        if not isinstance(context, Tensor):
            raise TypeError(
                f"flow `{self.FLOW_NAME}`: context must be a tensor of shape {_batch(shape)}, "
                f"got {type(context).__name__}"
            )
        if tuple(context.shape) == shape:
            return context.expand(n, *shape)
        if context.dim() == len(shape) + 1 and tuple(context.shape[1:]) == shape:
            if context.shape[0] == n:
                return context
            if context.shape[0] == 1:
                return context.expand(n, *shape)
            raise ValueError(
                f"flow `{self.FLOW_NAME}`: a batch of {n} needs {n} contexts (or one), "
                f"got {context.shape[0]}"
            )
        raise ValueError(
            f"flow `{self.FLOW_NAME}` expects a context of shape {_batch(shape)} or "
            f"{list(shape)}, got {list(context.shape)}"
        )

    # ---------------------------------------------------------- dequantization

    def dequantize(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Integers in [0, 2^bits) → (x + u)/2^bits with u ~ U[0, 1), and the ladj of the
        scaling (−D·bits·log 2) that turns a density into the discrete lower bound
        (Theis et al. 2016, arXiv:1511.01844)."""
        assert self.DEQUANTIZE is not None, "the flow does not dequantize"
        bits = self.DEQUANTIZE["bits"]
        levels = 2.0**bits
        x = x.to(self._probe.dtype)  # uint8 / int64 data, as images come
        u = torch.rand_like(x)
        y = (x + u) / levels
        ladj = x.new_full((x.shape[0],), -self.num_features * bits * math.log(2.0))
        return y, ladj

    def quantize(self, y: Tensor) -> Tensor:
        assert self.DEQUANTIZE is not None, "the flow does not dequantize"
        levels = 2 ** self.DEQUANTIZE["bits"]
        return torch.floor(y * levels).clamp_(0, levels - 1)

    def exact(self, enabled: bool = True):
        """``with flow.exact(): ...`` evaluates stochastic log-dets exactly (see
        :func:`flowspec.runtime.exact.exact`)."""
        return _exact(self, enabled)

    def regularization(self) -> Tensor:
        """The sum of the blocks' extra loss terms of their last forward call (an ``ode``
        block's ``regularize=finlay(...)``, see :meth:`ODE.regularization
        <flowspec.runtime.ode.ODE.regularization>`): a differentiable scalar, 0 when no
        block regularises.  ``flowspec train`` adds it to the loss."""
        total = self._probe.new_zeros(())
        for m in self.modules():
            term = getattr(m, "regularization", None)
            if m is not self and callable(term):
                total = total + term().to(total)
        return total

    def regularizes(self) -> bool:
        """Whether some block has a regulariser (``regularization()`` can be non-zero)."""
        return any(
            m is not self and getattr(m, "regularize", False) is True for m in self.modules()
        )

    @_validate.entry("log_prob")
    def log_prob(self, x: Tensor, context: Tensor | None = None, exact: bool = False) -> Tensor:
        """log p(x) = log q(F(x)) + log|det J_F(x)| (given ``context`` when the flow has
        one), per batch element: [B].

        With ``dequantize``, x holds integers and this is the dequantised lower bound
        of the discrete log-likelihood (one noise draw).  ``exact=True``: stochastic
        log-dets are computed exactly, as inside ``flowspec.exact(flow)``."""
        if exact:
            with _exact(self):
                return self.log_prob(x, context)
        self._check_input(x)
        ladj0 = None
        if self.DEQUANTIZE is not None:
            x, ladj0 = self.dequantize(x)
        z, ladj = self(x, context=context)
        lp = self.base_log_prob(z) + ladj
        return lp if ladj0 is None else lp + ladj0

    def bits_per_dim(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """−log₂ p(x) / D, per batch element."""
        return -self.log_prob(x, context) / (self.num_features * math.log(2.0))

    @torch.no_grad()
    @_validate.entry("sample")
    def sample(self, n: int, context: Tensor | None = None) -> Tensor:
        """``n`` samples of shape ``[n, *input_shape]`` (integers with ``dequantize``);
        with a context, one context per sample (``[n, *context_shape]``) or one for all."""
        x = self.inverse_transform(self.sample_latent(_count(self, n)), context=context)
        if self.DEQUANTIZE is not None:
            x = self.quantize(x)
        return x

    def rsample(self, n: int, context: Tensor | None = None) -> Tensor:
        """``n`` reparameterised samples x = F⁻¹(z), z ~ q: gradients flow from x to the
        parameters (and to the context), as variational inference needs."""
        self._continuous("rsample")
        return self.inverse_transform(self.sample_latent(_count(self, n)), context=context)

    def sample_and_log_prob(self, n: int, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``n`` reparameterised samples and their log-density in one pass through
        F⁻¹: log p(x) = log q(z) − log|det J_{F⁻¹}(z)|.  For a ``direction generative``
        spec this runs the blocks as written (no iterative inverse for planar, radial
        or IAF blocks); the reverse KL E_q[log q(x) − log p*(x)] is then a mean."""
        self._continuous("sample_and_log_prob")
        z = self.sample_latent(_count(self, n))
        x, ladj_inv = self.inverse(z, context=context)
        return x, self.base_log_prob(z) - ladj_inv

    def _continuous(self, what: str) -> None:
        if self.DEQUANTIZE is not None:
            raise ValueError(
                f"flow `{self.FLOW_NAME}` dequantizes integer data: {what} has no gradient "
                "through the rounding; use sample(n) for integer samples"
            )

    def extra_repr(self) -> str:
        return f"flow={self.FLOW_NAME!r}, input_shape={list(self.INPUT_SHAPE)}"


def _batch(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(("B", *map(str, shape))) + "]"


def _count(flow: Flow, n: Any) -> int:
    """A number of samples as an int (numpy and 0-d torch integers too), checked by
    :func:`flowspec.runtime.validate.check_count` whether or not validation is on."""
    _validate.check_count(flow, n)
    return operator.index(n)


def _batch_size(value: Any) -> int:
    first = value[0] if isinstance(value, (tuple, list)) else value
    return int(first.shape[0])


#: the generated methods and the check of their argument
_CHECKS = {
    "forward": Flow._check_input,
    "transform": Flow._check_input,
    "inverse": Flow._check_latents,
    "inverse_transform": Flow._check_latents,
}


def _checked(method: Callable[..., Any], check: Callable[[Flow, Any], None]) -> Any:
    @functools.wraps(method)
    def checked(self: Flow, value: Any, context: Tensor | None = None) -> Any:
        check(self, value)
        args = self._context_args(value, context)
        return _validate.call(self, method.__name__, method.__get__(self), value, *args)

    return checked
