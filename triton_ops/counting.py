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
    from triton.runtime.interpreter import InterpreterBuilder

    traffic = Traffic()
    load, store = InterpreterBuilder.create_masked_load, InterpreterBuilder.create_masked_store

    def counted_load(self, ptrs, mask, other, cache_policy, is_volatile):
        traffic.loads += int(mask.data.sum()) * (ptrs.get_element_ty().primitive_bitwidth // 8)
        return load(self, ptrs, mask, other, cache_policy, is_volatile)

    def counted_store(self, ptrs, value, mask, cache_policy):
        traffic.stores += int(mask.data.sum()) * (ptrs.get_element_ty().primitive_bitwidth // 8)
        return store(self, ptrs, value, mask, cache_policy)

    start = runtime.launch_count()
    InterpreterBuilder.create_masked_load = counted_load
    InterpreterBuilder.create_masked_store = counted_store
    try:
        yield traffic
    finally:
        InterpreterBuilder.create_masked_load = load
        InterpreterBuilder.create_masked_store = store
        traffic.launches = runtime.launch_count() - start
