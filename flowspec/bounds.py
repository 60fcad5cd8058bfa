"""``flowspec bounds``: what a flow's proven Lipschitz bounds say about what it can fit.

Verine, Chevaleyre, Rossi, Negrevergne 2021, "On the expressivity of bi-Lipschitz
normalizing flows".  The flow F maps data to a standard normal latent in d dimensions
and the model is P̂ = (F⁻¹)#N(0, I).

- If Lip(F) ≤ L1, F maps a ball B(x0, R) into a ball of radius L1·R, and no ball of
  radius r holds more normal mass than the centred one, so
  P̂(B(x0, R)) ≤ P(χ²_d ≤ L1²R²) = γ(d/2, L1²R²/2) / Γ(d/2) for every x0 ("max ball
  mass").  Hence TV(P*, P̂) ≥ P*(B) − P(χ²_d ≤ L1²R²) for every ball B ("dense" data).
- If Lip(F⁻¹) ≤ L2, F⁻¹ maps B(0, R/L2) into B(F⁻¹(0), R), so that ball holds at least
  P(χ²_d ≤ R²/L2²) ("min ball mass"), and
  TV ≥ P(χ²_d ≤ R²/L2²) − sup_c P*(B(c, R)) ("sparse" data).

The data are samples of P*, not P*: every number about P* is a confidence bound.  The
data are split in two halves, A and B.

- Dense: each point of A (at most ``MAX_CENTRES``) at each radius is a candidate ball;
  its true mass is bounded from below on B by a one-sided Clopper–Pearson bound, with
  a Bonferroni correction over all candidates, so all the bounds hold at once.
- Sparse: a ball B(c, R) of mass q > t contains a point x of A with probability at
  least 1 − (1 − t)^|A|, and then B(c, R) ⊂ B(x, 2R).  So, with probability at least
  1 − α₁ − α₂, sup_c P*(B(c, R)) ≤ max(t, max_x U_x), where U_x is the Clopper–Pearson
  upper bound on P*(B(x, 2R)) from B (Bonferroni over points and radii, level α₁) and
  t = 1 − α₂^(1/|A|).

Half the error probability goes to each kind, so the reported bound (the larger of the
two) holds at the stated confidence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowspec.checks.lipschitz import Proof, lipschitz_bound
from flowspec.ir.resolved import ResolvedFlow

#: at most this many points of A serve as candidate centres (each costs |B| distances)
MAX_CENTRES = 256
#: radii of the default grid
DEFAULT_RADII = 24


def chi2_cdf(x: float, d: int) -> float:
    """P(χ²_d ≤ x), the regularised lower incomplete gamma function γ(d/2, x/2)/Γ(d/2)."""
    from scipy.special import gammainc

    return float(gammainc(d / 2, max(x, 0.0) / 2))


def max_ball_mass(radius: float, d: int, lip: float | None) -> float:
    """The most mass the model can put in any ball of ``radius`` when Lip(F) ≤ ``lip``."""
    return 1.0 if lip is None else chi2_cdf((lip * radius) ** 2, d)


def min_ball_mass(radius: float, d: int, inverse_lip: float | None) -> float:
    """The least mass the model puts in the ball of ``radius`` around F⁻¹(0)."""
    return 0.0 if inverse_lip is None else chi2_cdf((radius / inverse_lip) ** 2, d)


def default_radii(d: int, lip: float | None, inverse_lip: float | None, data=None) -> list[float]:
    """Log-spaced radii: over the data's scale when data are given, else where the mass
    curves rise from 0.1 % to 99.9 %."""
    import numpy as np
    from scipy.stats import chi2

    if data is not None and len(data) > 1:
        sample = data[: min(len(data), 512)]
        dist = np.sqrt(((sample[:, None, :] - sample[None, :, :]) ** 2).sum(-1))
        positive = dist[dist > 0]
        if positive.size:
            lo, hi = float(np.quantile(positive, 0.001)) / 2, float(positive.max())
            return [float(r) for r in np.geomspace(lo, hi, DEFAULT_RADII)]
    lo_q, hi_q = math.sqrt(chi2.ppf(1e-3, d)), math.sqrt(chi2.ppf(1 - 1e-3, d))
    lo = lo_q / (lip or 1.0)
    hi = hi_q * (inverse_lip or 1.0)
    return [float(r) for r in np.geomspace(lo, max(hi, lo * 10), DEFAULT_RADII)]


def _clopper_pearson_lower(k: int, n: int, alpha: float) -> float:
    from scipy.stats import beta

    return 0.0 if k == 0 else float(beta.ppf(alpha, k, n - k + 1))


def _clopper_pearson_upper(k: int, n: int, alpha: float) -> float:
    from scipy.stats import beta

    return 1.0 if k == n else float(beta.ppf(1 - alpha, k + 1, n - k))


def tv_lower_bound(
    data, radii: list[float], lip: float | None, inverse_lip: float | None, confidence: float
) -> dict[str, Any] | None:
    """The largest lower bound on TV(P*, P̂) that ``data`` (samples of P*) force at
    ``confidence``, or None when neither kind gives a positive one."""
    import numpy as np

    n = len(data)
    if n < 4:
        return None
    rng = np.random.default_rng(0)
    order = rng.permutation(n)
    a, b = data[order[: n // 2]], data[order[n // 2 :]]
    centres = a[: min(len(a), MAX_CENTRES)]
    # distances from each centre to every point of B, sorted: mass counts by searchsorted
    dist = np.sort(np.sqrt(((centres[:, None, :] - b[None, :, :]) ** 2).sum(-1)), axis=1)
    alpha = 1 - confidence
    best: dict[str, Any] | None = None

    def consider(value: float, kind: str, radius: float, centre) -> None:
        nonlocal best
        if value > 0 and (best is None or value > best["value"]):
            best = {
                "value": value,
                "confidence": confidence,
                "kind": kind,
                "radius": radius,
                "center": None if centre is None else [float(v) for v in centre],
            }

    m = len(centres) * len(radii)
    if lip is not None:  # dense: P*(B(c, R)) from below, simultaneously for all m balls
        for radius in radii:
            counts = (dist <= radius).sum(axis=1)
            top = int(np.argmax(counts))
            lower = _clopper_pearson_lower(int(counts[top]), len(b), alpha / 2 / m)
            consider(
                lower - max_ball_mass(radius, data.shape[1], lip), "dense", radius, centres[top]
            )
    if inverse_lip is not None:  # sparse: sup_c P*(B(c, R)) from above
        alpha1, alpha2 = alpha / 4, alpha / 4
        t = 1 - alpha2 ** (1 / len(a))
        for radius in radii:
            counts = (dist <= 2 * radius).sum(axis=1)
            upper = _clopper_pearson_upper(int(counts.max()), len(b), alpha1 / m)
            sup_mass = max(t, upper)
            consider(
                min_ball_mass(radius, data.shape[1], inverse_lip) - sup_mass,
                "sparse",
                radius,
                None,
            )
    return best


def load_data(path: str, key: str | None = None):
    """A data file as an [n, ...] float64 array: .npy, .npz (``key``, or its one array)
    or .csv (a header row of names is skipped)."""
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"no such data file: {path}")
    if p.suffix == ".npy":
        array = np.load(p, allow_pickle=False)
    elif p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as z:
            names = list(z.keys())
            if key is None and len(names) != 1:
                raise ValueError(f"{path} holds {', '.join(names)}: choose one with --key")
            array = z[key or names[0]]
    elif p.suffix == ".csv":
        array = np.genfromtxt(p, delimiter=",", skip_header=_header_rows(p))
        array = array.reshape(len(array), -1) if array.ndim < 2 else array
    else:
        raise ValueError(f"{path}: data must be .npy, .npz or .csv")
    array = np.asarray(array, dtype=np.float64)
    if array.ndim < 1 or len(array) == 0:
        raise ValueError(f"{path} holds no samples")
    if not np.isfinite(array).all():
        raise ValueError(f"{path} holds NaN or infinite values")
    return array.reshape(len(array), -1)


def _header_rows(path: Path) -> int:
    first = path.read_text(encoding="utf-8").split("\n", 1)[0]
    try:
        [float(v) for v in first.split(",")]
        return 0
    except ValueError:
        return 1


@dataclass(frozen=True)
class Bounds:
    lipschitz: Proof
    inverse_lipschitz: Proof
    dim: int
    radii: list[float]
    tv: dict[str, Any] | None
    with_data: bool = False

    def max_ball_mass(self) -> list[float]:
        return [max_ball_mass(r, self.dim, self.lipschitz.value) for r in self.radii]

    def min_ball_mass(self) -> list[float]:
        return [min_ball_mass(r, self.dim, self.inverse_lipschitz.value) for r in self.radii]

    def to_json(self) -> dict[str, Any]:
        return {
            "lipschitz": self.lipschitz.value,
            "inverse_lipschitz": self.inverse_lipschitz.value,
            "dim": self.dim,
            "radii": self.radii,
            "max_ball_mass": self.max_ball_mass(),
            "min_ball_mass": self.min_ball_mass(),
            "tv_lower_bound": self.tv,
        }


def bounds(
    rf: ResolvedFlow,
    radii: list[float] | None = None,
    data=None,
    confidence: float = 0.95,
) -> Bounds:
    """The expressivity bounds of an elaborated flow (and of ``data`` against it)."""
    fg = rf.graph
    if fg.input_shape is None:
        raise ValueError("the flow has no input shape")
    d = math.prod(fg.input_shape)
    if data is not None and data.shape[1] != d:
        raise ValueError(
            f"the data have {data.shape[1]} features per sample, but the flow's input "
            f"{list(fg.input_shape)} has {d}"
        )
    lip, inv = lipschitz_bound(rf), lipschitz_bound(rf, inverse=True)
    grid = radii or default_radii(d, lip.value, inv.value, data)
    tv = None if data is None else tv_lower_bound(data, grid, lip.value, inv.value, confidence)
    return Bounds(lip, inv, d, grid, tv, data is not None)


def render_text(b: Bounds) -> str:
    def bound(name: str, proof: Proof) -> str:
        if proof.value is not None:
            return f"{name} ≤ {proof.value:.6g} (proven)"
        where = proof.node
        at = f" (line {where.span.line})" if where is not None else ""
        kind = f"`{where.kind}`{at}" if where is not None else "a block"
        return f"{name}: no bound, because {kind} is unbounded: {proof.reason}"

    lines = [
        bound("Lip(F)", b.lipschitz),
        bound("Lip(F⁻¹)", b.inverse_lipschitz),
        f"dimension d = {b.dim}",
        "",
        f"{'radius R':>12}  {'max mass in any ball':>22}  {'min mass around F⁻¹(0)':>24}",
    ]
    for r, hi, lo in zip(b.radii, b.max_ball_mass(), b.min_ball_mass()):
        lines.append(f"{r:>12.4g}  {hi:>22.6g}  {lo:>24.6g}")
    if b.tv is None and b.with_data:
        lines += ["", "the data force no positive TV lower bound at these radii"]
    if b.tv is not None:
        tv = b.tv
        where = f", around {tv['center']}" if tv["center"] is not None else ""
        lines += [
            "",
            f"TV(data, model) ≥ {tv['value']:.4f} for every setting of the weights "
            f"({tv['kind']} data, radius {tv['radius']:.4g}{where}); a valid bound at "
            f"{100 * tv['confidence']:g}% confidence",
        ]
    return "\n".join(lines) + "\n"


def register(sub, parents) -> None:
    """``flowspec bounds SPEC [--radius R ...] [--data FILE] [--confidence C]``."""
    p = sub.add_parser(
        "bounds",
        parents=parents,
        help="what the proven Lipschitz bounds say about the densities the flow can fit",
    )
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--flow")
    p.add_argument("--radius", type=float, action="append", metavar="R", help="repeatable")
    p.add_argument("--data", metavar="FILE", help=".npy, .npz or .csv samples of the data")
    p.add_argument("--key", help="the array of an .npz file")
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(run=run)


def run(args) -> int:
    import json
    import sys

    from flowspec.cli import EXIT_ERRORS, EXIT_OK, UsageError, _read
    from flowspec.core.diagnostics import render_text as render_diagnostics

    if not 0 < args.confidence < 1:
        raise UsageError(f"--confidence must be in (0, 1), got {args.confidence}")
    if args.radius and any(not (r > 0 and math.isfinite(r)) for r in args.radius):
        raise UsageError("--radius must be positive")
    comp = _read(args.spec, args)
    if comp.errors:
        sys.stderr.write(render_diagnostics(comp.diagnostics, comp.sources))
        return EXIT_ERRORS
    try:
        data = None if args.data is None else load_data(args.data, args.key)
        result = bounds(comp.resolved(args.flow), args.radius, data, args.confidence)
    except ValueError as e:
        sys.stderr.write(f"flowspec: error: {e}\n")
        return EXIT_ERRORS
    if args.format == "json":
        print(json.dumps(result.to_json(), indent=2))
    else:
        sys.stdout.write(render_text(result))
    return EXIT_OK
