"""The checker's passes, in order.  Each is ``(FlowGraph) -> list[Diagnostic]``.

Later passes read the annotations earlier ones set (options, shapes) and skip the
blocks an earlier error left unannotated.
"""

from flowspec.checks.advice import check_advice, check_dense_nets
from flowspec.checks.arguments import check_arguments
from flowspec.checks.consume import check_consumption
from flowspec.checks.coverage import check_coverage, check_ode_smoothness
from flowspec.checks.invertibility import check_invertibility
from flowspec.checks.lipschitz import check_lipschitz
from flowspec.checks.placement import check_placement
from flowspec.checks.requirements import check_requirements
from flowspec.checks.shapes import check_shapes

PASSES = (
    check_arguments,
    check_shapes,
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

#: passes whose findings are only meaningful on a completely lowered flow: after a
#: lowering error (an unknown tensor, a failed block call) the graph has holes, and
#: these would report the holes (a tensor "never consumed" because the block that
#: consumed it could not be expanded) instead of the user's mistakes
NEEDS_COMPLETE_GRAPH = frozenset(
    {check_consumption, check_requirements, check_lipschitz, check_coverage}
)

#: the same tuple under the name of the package; PASSES stays until its callers move
CHECKS = PASSES

__all__ = ["CHECKS", "NEEDS_COMPLETE_GRAPH", "PASSES"]
