"""What ``flowspec verify`` found: :class:`Check` rows grouped per block, and the text,
JSON and JUnit renderings (torch-free)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

#: the table's columns: quantity → heading, in this order
COLUMNS = {
    "round trip": "round trip",
    "ladj": "ladj",
    "inverse ladj": "inv ladj",
    "fused": "fused",
    "stochastic ladj": "estimator",
    "estimate sd": "σ est",
    "exact ladj": "exact ladj",
    "lipschitz": "Lip",
    "inverse lipschitz": "Lip⁻¹",
    "weights": "σ(W)",
    "finite": "finite",
    "gradients": "grad",
}

#: what each quantity measures, for the failure lines and the README
MEANING = {
    "round trip": "max |inverse(forward(x)) − x| / (1 + max |x|)",
    "ladj": "max |ladj − log|det J|| / (1 + |log|det J||), J the brute-force float64 Jacobian",
    "inverse ladj": "max |ladj_inv + ladj| / (1 + |ladj|)",
    "fused": "max difference of the fused and value-only paths, relative",
    "stochastic ladj": "|mean of N estimates − exact log|det J||",
    "estimate sd": "standard deviation of one log-det estimate (largest over the inputs); "
    "reported, no tolerance",
    "exact ladj": "exact-evaluation ladj against the brute-force log|det J|, relative",
    "lipschitz": "largest σ_max of the Jacobian at the sampled points",
    "inverse lipschitz": "largest 1/σ_min of the Jacobian at the sampled points",
    "weights": "largest σ_max of a certified weight as used in forward",
    "finite": "non-finite outputs or log-dets",
    "gradients": "non-finite gradients",
}


@dataclass
class Check:
    """One measured quantity of one block (or of the whole flow): ``ok`` when
    ``measured <= tolerance``; ``note`` says more (an error raised, what was skipped)."""

    quantity: str
    measured: float
    tolerance: float
    ok: bool
    note: str = ""
    skipped: bool = False

    def to_dict(self) -> dict:
        return {
            "quantity": self.quantity,
            "measured": _num(self.measured),
            "tolerance": _num(self.tolerance),
            "ok": self.ok,
            "skipped": self.skipped,
            "note": self.note,
        }


@dataclass
class BlockReport:
    """The checks of one block: ``attr`` is its attribute of the module (``b3``), or
    ``flow`` for the whole-flow row; ``location`` its spec line (``file:line``)."""

    attr: str
    kind: str
    location: str
    checks: list[Check] = field(default_factory=list)
    #: the ``block`` calls it was expanded from (``called at line 18``)
    via: str = ""
    #: an ``ode`` block's function evaluations of one call on the samples: ``forward``
    #: (value and log-det), ``inverse`` (the same, backwards) and ``backward`` (the
    #: gradient of the forward call: the adjoint's re-integration, 0 without it)
    nfe: dict[str, int] | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def add(self, check: Check) -> Check:
        self.checks.append(check)
        return check

    def get(self, quantity: str) -> Check | None:
        return next((c for c in self.checks if c.quantity == quantity), None)

    def to_dict(self) -> dict:
        return {
            "block": self.attr,
            "kind": self.kind,
            "location": self.location,
            "via": self.via,
            "ok": self.ok,
            "checks": [c.to_dict() for c in self.checks],
            **({} if self.nfe is None else {"nfe": dict(self.nfe)}),
        }


@dataclass
class VerifyReport:
    """The result of :func:`flowspec.verify`: ``ok``, one :class:`BlockReport` per block
    in program order then one for the whole flow (``rows``), and ``str()`` the table."""

    flow: str
    path: str
    dtype: str
    samples: int
    seed: int
    rows: list[BlockReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    def failures(self) -> list[tuple[BlockReport, Check]]:
        return [(r, c) for r in self.rows for c in r.checks if not c.ok]

    def failure_lines(self) -> list[str]:
        return [failure_line(r, c) for r, c in self.failures()]

    def __str__(self) -> str:
        return render_text(self)

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "flow": self.flow,
            "dtype": self.dtype,
            "samples": self.samples,
            "seed": self.seed,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "blocks": [r.to_dict() for r in self.rows],
            "failures": self.failure_lines(),
        }


def _num(x: float) -> float | str:
    return x if math.isfinite(x) else str(x)


def _fmt(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e4:
        return f"{x:.4g}"
    return f"{x:.1e}"


def failure_line(row: BlockReport, check: Check) -> str:
    """``file:line: block `kind` (b3): quantity: measured M > tolerance T (note)``."""
    what = f"`{row.kind}` ({row.attr})" if row.attr != "flow" else "the whole flow"
    if row.via:
        what += f", {row.via}"
    text = (
        f"{row.location}: {what}: {check.quantity}: measured {_fmt(check.measured)} "
        f"> tolerance {_fmt(check.tolerance)}"
    )
    return text + (f" ({check.note})" if check.note else "")


def render_text(report: VerifyReport) -> str:
    head = (
        f"verify {report.path}: flow `{report.flow}`, {report.dtype}, "
        f"{report.samples} samples, seed {report.seed}"
    )
    used = [q for q in COLUMNS if any(r.get(q) for r in report.rows)]
    header = ["block", "line", "kind", *(COLUMNS[q] for q in used), "status"]
    table = [header]
    for r in report.rows:
        cells = [r.attr, r.location.rsplit(":", 1)[-1] if r.attr != "flow" else "", r.kind]
        for q in used:
            c = r.get(q)
            if c is None or c.skipped:
                cells.append("-" if c is None else "skip")
            else:
                cells.append(_fmt(c.measured) + ("" if c.ok else " ✗"))
        cells.append("ok" if r.ok else "FAIL")
        table.append(cells)
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [head]
    for row in table:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    fails = report.failure_lines()
    skipped = [
        f"{r.location}: {r.attr} {c.quantity} skipped: {c.note}"
        for r in report.rows
        for c in r.checks
        if c.skipped and c.note
    ]
    lines.extend(f"note: {s}" for s in dict.fromkeys(skipped))
    lines.extend(
        f"nfe: {r.attr} ({r.kind}, line {r.location.rsplit(':', 1)[-1]}): forward "
        f"{r.nfe['forward']}, inverse {r.nfe['inverse']}, backward {r.nfe['backward']} "
        f"function evaluations (one call on the {report.samples} samples)"
        for r in report.rows
        if r.nfe is not None
    )
    if fails:
        lines.extend(f"FAILED {f}" for f in fails)
        lines.append(f"{len(fails)} check(s) failed in flow `{report.flow}`")
    else:
        n = sum(len(r.checks) for r in report.rows)
        lines.append(f"ok: {n} checks passed in {report.seconds:.1f} s")
    return "\n".join(lines) + "\n"


def render_json(reports: list[VerifyReport], errors: list[str] | None = None) -> str:
    return json.dumps(
        {
            "ok": all(r.ok for r in reports) and not errors,
            "reports": [r.to_dict() for r in reports],
            "errors": errors or [],
        },
        indent=2,
        ensure_ascii=False,
    )


def render_junit(reports: list[VerifyReport], errors: dict[str, str] | None = None) -> str:
    """One ``<testsuite>`` per spec, one ``<testcase>`` per block (and the whole flow);
    a spec that could not be built is one failing case."""
    errors = errors or {}
    suites = []
    for rep in reports:
        cases = []
        for r in rep.rows:
            name = quoteattr(f"{r.attr} {r.kind} ({r.location})")
            fails = [failure_line(r, c) for c in r.checks if not c.ok]
            if fails:
                body = escape("\n".join(fails))
                cases.append(
                    f"    <testcase classname={quoteattr(rep.path)} name={name}>\n"
                    f"      <failure message={quoteattr(fails[0])}>{body}</failure>\n"
                    "    </testcase>"
                )
            else:
                cases.append(f"    <testcase classname={quoteattr(rep.path)} name={name}/>")
        n_fail = sum(not r.ok for r in rep.rows)
        suites.append(
            f"  <testsuite name={quoteattr('flowspec verify ' + rep.path)} "
            f'tests="{len(rep.rows)}" failures="{n_fail}" time="{rep.seconds:.3f}">\n'
            + "\n".join(cases)
            + "\n  </testsuite>"
        )
    for path, message in errors.items():
        suites.append(
            f'  <testsuite name={quoteattr("flowspec verify " + path)} tests="1" failures="1">\n'
            f'    <testcase classname={quoteattr(path)} name="build">\n'
            f"      <failure message={quoteattr(message.splitlines()[0] if message else '')}>"
            f"{escape(message)}</failure>\n    </testcase>\n  </testsuite>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<testsuites>\n'
        + "\n".join(suites)
        + ("\n</testsuites>\n")
    )


__all__ = [
    "COLUMNS",
    "MEANING",
    "BlockReport",
    "Check",
    "VerifyReport",
    "failure_line",
    "render_json",
    "render_junit",
    "render_text",
]
