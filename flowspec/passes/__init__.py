"""The checker's passes, in order.  Each is ``(FlowGraph) -> list[Diagnostic]``.

Later passes read the annotations earlier ones set (options, shapes) and skip the
blocks an earlier error left unannotated.
"""

from flowspec.passes.arguments import check_arguments
from flowspec.passes.consume import check_consumption
from flowspec.passes.coverage import check_coverage, check_ode_smoothness
from flowspec.passes.invertibility import check_invertibility
from flowspec.passes.lipschitz import check_lipschitz
from flowspec.passes.placement import check_placement
from flowspec.passes.requirements import check_requirements
from flowspec.passes.shapes import check_shapes

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
)

__all__ = ["PASSES"]
