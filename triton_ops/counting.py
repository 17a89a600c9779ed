"""Count the bytes Triton kernels move, by wrapping the interpreter's masked loads and stores.

Each load or store adds ``mask.sum() * element size``: what a kernel asks of memory, with no
cache in between. A one-pass kernel measures 1.00x its op's minimum bytes. Used by the tests and
by ``python -m bench`` on CPU. Interpreter only (a compiled kernel's loads are not visible).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

from . import runtime


@dataclass
class Traffic:
    loads: int = 0
    stores: int = 0
    launches: int = 0

    @property
    def total(self) -> int:
        return self.loads + self.stores


@contextlib.contextmanager
def count_bytes():
    """``with count_bytes() as t: ...`` then ``t.loads``, ``t.stores``, ``t.total``, ``t.launches``."""
    if not runtime.INTERPRETER:
        raise RuntimeError("triton_ops.counting.count_bytes needs the interpreter backend")
    import numpy as np
    from triton.runtime.interpreter import InterpreterBuilder

    traffic = Traffic()
    load, store = InterpreterBuilder.create_masked_load, InterpreterBuilder.create_masked_store

    # Between Triton releases the arguments after the mask differ (3.6: cache and eviction, 3.9:
    # one cache policy), and a TMA descriptor's load passes its mask as a bare array (3.6).
    def elements(mask) -> int:
        return int((mask if isinstance(mask, np.ndarray) else mask.data).sum())

    def counted_load(self, ptrs, mask, *rest, **kw):
        traffic.loads += elements(mask) * (ptrs.get_element_ty().primitive_bitwidth // 8)
        return load(self, ptrs, mask, *rest, **kw)

    def counted_store(self, ptrs, value, mask, *rest, **kw):
        traffic.stores += elements(mask) * (ptrs.get_element_ty().primitive_bitwidth // 8)
        return store(self, ptrs, value, mask, *rest, **kw)

    start = runtime.launch_count()
    InterpreterBuilder.create_masked_load = counted_load
    InterpreterBuilder.create_masked_store = counted_store
    try:
        yield traffic
    finally:
        InterpreterBuilder.create_masked_load = load
        InterpreterBuilder.create_masked_store = store
        traffic.launches = runtime.launch_count() - start


# Ops that only make views or metadata: no kernel, no bytes.
_NO_TRAFFIC = {"view", "_unsafe_view", "t", "transpose", "permute", "expand", "detach", "alias", "unsqueeze",
               "squeeze", "as_strided", "slice", "select", "reshape", "_reshape_alias", "split", "unbind",
               "lift_fresh", "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "_to_copy_noop",
               "is_same_size", "sym_size", "sym_stride", "sym_numel", "sym_storage_offset", "numpy_T"}


@contextlib.contextmanager
def count_aten():
    """Count what eager PyTorch moves: each ATen op (views and allocations aside) reads its
    tensor inputs and writes its outputs once. ``with count_aten() as t: ...``."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    import torch

    traffic = Traffic()

    def nbytes(values):
        return sum(v.numel() * v.element_size() for v in tree_flatten(values)[0] if isinstance(v, torch.Tensor))

    class Mode(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func.overloadpacket.__name__.rstrip("_") not in _NO_TRAFFIC:
                traffic.loads += nbytes((args, kwargs))
                traffic.stores += nbytes(out)
                traffic.launches += 1
            return out

    with Mode():
        yield traffic
