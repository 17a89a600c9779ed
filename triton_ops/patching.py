"""``triton_ops.patch()``: run model code written against ``torch.nn.functional`` on triton_ops
kernels, reversibly (SPEC section 6)."""
from __future__ import annotations

import torch.nn.functional as _F

from . import functional as _TF


class Patch:
    """What ``patch()`` changed, and how to put it back: ``.undo()`` (idempotent) restores the
    original ``torch.nn.functional`` objects and module objects exactly (identity, not copies).
    A context manager: ``with triton_ops.patch(): ...``."""

    def __init__(self, functions, modules, model):
        self._functions = functions  # name -> the original torch.nn.functional object
        self._modules = modules      # (parent, attribute, original child) for every swapped module
        self.model = model           # the model after replace() (the very object, unless its root was swapped)
        self.active = True

    def undo(self):
        if not self.active:
            return
        for name, original in self._functions.items():
            setattr(_F, name, original)
        for parent, name, child in self._modules:
            setattr(parent, name, child)
        self.active = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.undo()
        return False


def patch(model=None, verbose: bool = False) -> Patch:
    """Rebind the functions of ``triton_ops.functional`` inside ``torch.nn.functional`` (so
    ``F.gelu``, ``F.layer_norm``, ``F.cross_entropy``... and the ``torch.nn`` modules calling
    them run triton_ops kernels, eager or under ``torch.compile``), and, given ``model``, swap its
    modules in place with ``triton_ops.nn.replace``. Returns a ``Patch``; ``.undo()`` restores
    everything. ``torch.matmul`` and the ``Tensor`` methods are left alone."""
    from . import nn as _tnn

    functions = {name: getattr(_F, name) for name in _TF.__all__ if hasattr(_F, name)}
    modules = []
    if model is not None:
        modules = [(parent, name, child) for parent in model.modules() for name, child in parent._modules.items()
                   if child is not None]
        model = _tnn.replace(model, verbose=verbose)
    for name in functions:
        setattr(_F, name, getattr(_TF, name))
    return Patch(functions, modules, model)
