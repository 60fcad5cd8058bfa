"""Resources known before anything is allocated (issue 11).

Every registry entry counts its parameters from shapes and options alone; the proof
that each formula is right is that it equals the parameters of the built runtime block
for every example of every kind.  The flow-level count backs ``flowspec check
--max-params`` (E501) and ``flowspec summary``, neither of which builds a module.
"""

from __future__ import annotations

import pytest
from harness import cases, resolve_example, runtime_class, shape_rule_inputs

from flowspec.kinds import KINDS, REGISTRY, BlockKind, Example
from flowspec.kinds.options import Choice


@pytest.mark.parametrize(("kind", "example"), list(cases()))
def test_the_parameter_formula_equals_the_built_block(kind, example):
    opts = resolve_example(kind, example)
    block = runtime_class(kind)([tuple(s) for s in example.shapes], **opts)
    real = sum(p.numel() for p in block.parameters())
    assert kind.parameters(opts, shape_rule_inputs(example)) == real


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_every_kind_gives_its_activation_size(kind):
    for example in kind.examples:
        n = kind.activations(resolve_example(kind, example), shape_rule_inputs(example))
        assert isinstance(n, int) and n >= 0


def test_a_kind_without_a_parameter_count_is_refused_with_a_clear_error():
    with pytest.raises(TypeError, match=r"block kind `scale` gives no `parameters=`"):
        BlockKind("scale", "y = s·x", "", (), lambda opts, shapes: shapes, "m:Scale")


def _lipswish(net: str, **options):
    return Choice(net, {"act": "lipswish", **options})


#: configurations the registry's examples do not reach: learned activations (LipSwish's
#: β), even kernels, deeper nets, an mlp on an image, a MADE without hidden layers
MORE = [
    ("coupling.affine", Example(((6,),), {"net": _lipswish("mlp", hidden=[5, 7])}, cond=(2,))),
    (
        "coupling.spline",
        Example(
            ((4, 4, 4),),
            {"mask": "channel", "net": _lipswish("conv", hidden=3, kernel=2, depth=3)},
        ),
    ),
    (
        "coupling.additive",
        Example(((2, 4, 4),), {"net": _lipswish("resnet", hidden=4, blocks=3)}, cond=(3, 4, 4)),
    ),
    ("autoregressive.affine", Example(((3,),), {"hidden": [], "act": "lipswish"}, cond=(2, 2))),
    ("autoregressive.spline", Example(((3,),), {"hidden": [4, 6], "act": "lipswish"})),
    ("residual", Example(((2, 3),), {"net": _lipswish("mlp", hidden=[4, 4])})),
    ("residual", Example(((2, 4, 4),), {"net": _lipswish("conv", hidden=3, kernel=1, depth=3)})),
    ("ode", Example(((2, 3, 3),), {"net": Choice("conv", {"hidden": 4, "act": "lipswish"})})),
    ("ode", Example(((2, 2, 2),), {"net": Choice("resnet", {"hidden": 2, "blocks": 1})})),
    ("ode", Example(((2, 2),), {"net": _lipswish("mlp", hidden=[3])})),
    ("actnorm", Example(((3, 2),))),
    ("invconv", Example(((5, 1, 2),))),
]


@pytest.mark.parametrize(
    ("name", "example"), MORE, ids=[f"{n}-{i}" for i, (n, _) in enumerate(MORE)]
)
def test_the_parameter_formula_equals_the_built_block_beyond_the_examples(name, example):
    test_the_parameter_formula_equals_the_built_block(REGISTRY[name], example)
