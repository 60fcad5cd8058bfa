"""The checks: read-only passes over an elaborated flow, each
``(ResolvedFlow) -> list[Diagnostic]``.

Elaboration (:mod:`flowspec.elaborate`) runs first and resolves options and shapes;
a check never writes to the graph.  The driver runs ``BLOCK_CHECKS`` on every flow, and
``FLOW_CHECKS`` only on a flow that lowering reached completely: after a lowering error
(an unknown tensor, a failed block call) the graph has holes, and a flow-wide check
would report the holes (a tensor "never consumed" because the block that consumed it
could not be expanded) instead of the user's mistakes.  Each check reads the blocks it
can (``configured`` for options, ``blocks`` for shapes) and skips the rest.
"""

from flowspec.checks.advice import check_advice, check_dense_nets
from flowspec.checks.consume import check_consumption
from flowspec.checks.coverage import check_coverage, check_ode_smoothness
from flowspec.checks.invertibility import check_invertibility
from flowspec.checks.lipschitz import check_lipschitz
from flowspec.checks.placement import check_placement
from flowspec.checks.requirements import check_requirements

#: every check, in the order their findings are listed for one position
CHECKS = (
    check_consumption,
    check_invertibility,
    check_requirements,
    check_lipschitz,
    check_placement,
    check_coverage,
    check_ode_smoothness,
    check_advice,
    check_dense_nets,
)

#: the checks that need a completely lowered flow (the driver skips them otherwise)
FLOW_CHECKS = frozenset({check_consumption, check_requirements, check_lipschitz, check_coverage})

__all__ = ["CHECKS", "FLOW_CHECKS"]
