r"""Requirements on the log-determinant and the inverse (E401).

>>> from flowspec.checks.examples import diagnose
>>> diagnose("require exact_logdet\nx = residual(x, net=mlp(hidden=[8]), logdet=roulette)")
E401 4:42 `require exact_logdet` is violated: `residual` uses a stochastic log-det
    estimator (logdet=roulette(p=0.5, exact_terms=0))
>>> diagnose("require analytic_inverse\nx = residual(x, net=mlp(hidden=[8]))")
E401 4:9 `require analytic_inverse` is violated: `residual` is inverted by iteration
"""

from __future__ import annotations

from flowspec.core.diagnostics import Diagnostic, Label
from flowspec.ir.resolved import ResolvedFlow
from flowspec.kinds import REGISTRY

_ITERATIVE = {"iterative": "iteration", "integrated": "ODE integration"}


def check_requirements(rf: ResolvedFlow) -> list[Diagnostic]:
    diags: list[Diagnostic] = []
    for req in rf.graph.requirements:
        if req.property not in ("exact_logdet", "analytic_inverse"):
            continue
        for node in rf.configured:
            spec = REGISTRY[node.kind]
            label = Label(req.span, "required here")
            if req.property == "exact_logdet" and spec.logdet_class(node.options) == "stochastic":
                key = next(
                    (
                        k
                        for k in ("logdet", "eval_logdet", "trace")
                        if getattr(node.options.get(k), "kind", "exact") not in ("exact", "same")
                    ),
                    "logdet" if "logdet" in node.options else "trace",
                )
                diags.append(
                    Diagnostic(
                        "E401",
                        f"`require exact_logdet` is violated: `{node.kind}` uses a "
                        f"stochastic log-det estimator ({key}={node.options[key]})",
                        node.arg_span(key),
                        labels=(label,),
                        hint="use logdet=exact (small inputs) for residual blocks or trace=exact "
                        "for ode blocks"
                        if key
                        else None,
                    )
                )
            inv = spec.inverse_class(node.options)
            if req.property == "analytic_inverse" and inv in _ITERATIVE:
                diags.append(
                    Diagnostic(
                        "E401",
                        f"`require analytic_inverse` is violated: `{node.kind}` is inverted "
                        f"by {_ITERATIVE[inv]}",
                        node.span,
                        labels=(label,),
                    )
                )
    return diags
