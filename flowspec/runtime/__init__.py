"""The torch runtime: one module per block family (each class implements the contract
in :mod:`flowspec.runtime.base`), the conditioner nets, the certified Lipschitz layers,
and :class:`flowspec.runtime.flow.Flow`, the base class of every generated model.

Nothing is re-exported here: importing :mod:`flowspec.runtime` does not import torch,
and the compile-time side (:mod:`flowspec.kinds`, the checker) never imports this
package.
"""
