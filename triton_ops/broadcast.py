"""Broadcast shapes and the iteration plans the kernels run on (pure shape logic, no kernels).

Every pointwise kernel (unary, binary, losses, broadcast-back) iterates the output as three
groups of axes, decided here once:

* ``A`` - axes along which the slot-0 operand is broadcast: a program *loops* over them, so
  slot 0 is loaded once and its gradient accumulates in registers;
* ``B`` - axes along which the slot-1 operand is broadcast: the *rows* of a program's 2-D tile,
  so slot 1 is loaded as one row and its gradient is a column sum of the tile;
* ``C`` - every other axis: the *columns* of the tile.

Axes of size 1 are dropped and adjacent axes of one group that are contiguous for every tensor
are merged, so a contiguous unary op sees one axis and does no index arithmetic at all.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


def align_shape(shape: Sequence[int], rank: int) -> tuple[int, ...]:
    return (1,) * (rank - len(shape)) + tuple(shape)


def broadcast_shapes(op: str, a_shape, b_shape) -> torch.Size:
    a, b = tuple(a_shape), tuple(b_shape)
    rank = max(len(a), len(b))
    out = []
    for sa, sb in zip(align_shape(a, rank), align_shape(b, rank)):
        if sa == sb or sb == 1:
            out.append(sa)
        elif sa == 1:
            out.append(sb)
        else:
            raise ValueError(f"triton_ops.{op}: cannot broadcast lhs shape {a} with rhs shape {b}")
    return torch.Size(out)


def broadcast_numel(out_shape, shape) -> int:
    """Elements of the output axes along which ``shape`` is broadcast (the A or B group size)."""
    rank = len(out_shape)
    aligned = (1,) * (rank - len(shape)) + tuple(shape)
    n = 1
    for o, s in zip(out_shape, aligned):
        if s == 1:
            n *= o
    return n



# --------------------------------------------------------------------------------------------
# iteration plan for the pointwise kernels


def aligned_strides(t: torch.Tensor, out_shape: Sequence[int]) -> tuple[int, ...]:
    """``t``'s strides over the output's axes: 0 where ``t`` is broadcast (size 1 or missing)."""
    rank = len(out_shape)
    shape = align_shape(t.shape, rank)
    strides = (0,) * (rank - t.dim()) + tuple(t.stride())
    return tuple(0 if s == 1 else st for s, st in zip(shape, strides))


def contiguous_strides(shape: Sequence[int], out_shape: Sequence[int]) -> tuple[int, ...]:
    """Strides of a fresh contiguous tensor of ``shape``, over the output's axes."""
    rank = len(out_shape)
    shape = align_shape(shape, rank)
    strides, acc = [0] * rank, 1
    for d in reversed(range(rank)):
        strides[d] = 0 if shape[d] == 1 else acc
        acc *= shape[d]
    return tuple(strides)


@dataclass(frozen=True)
class GroupPlan:
    sizes: tuple[int, ...]             # per merged axis, outer to inner
    strides: dict                      # tensor name -> strides tuple (same length as sizes)

    @property
    def numel(self) -> int:
        n = 1
        for s in self.sizes:
            n *= s
        return n


@dataclass(frozen=True)
class PointwisePlan:
    A: GroupPlan
    B: GroupPlan
    C: GroupPlan

    def strides(self, name: str):
        return self.A.strides[name], self.B.strides[name], self.C.strides[name]


def _group(dims: list[int], out_shape, layouts: dict) -> GroupPlan:
    if not dims:
        return GroupPlan((1,), {k: (0,) for k in layouts})
    sizes = [out_shape[dims[0]]]
    strides = {k: [v[dims[0]]] for k, v in layouts.items()}
    for d in dims[1:]:
        size = out_shape[d]
        if all(strides[k][-1] == v[d] * size for k, v in layouts.items()):
            sizes[-1] *= size
            for k, v in layouts.items():
                strides[k][-1] = v[d]
        else:
            sizes.append(size)
            for k, v in layouts.items():
                strides[k].append(v[d])
    return GroupPlan(tuple(sizes), {k: tuple(v) for k, v in strides.items()})


def plan_pointwise(out_shape: Sequence[int], slot0_shape, slot1_shape, layouts: dict) -> PointwisePlan:
    """Split the output axes into the A/B/C groups (see the module docstring).

    ``layouts`` maps a tensor's name to its strides over the output axes (``aligned_strides``
    or ``contiguous_strides``); every tensor a kernel touches must be listed so that only axes
    contiguous for all of them are merged.
    """
    rank = len(out_shape)
    s0 = align_shape(slot0_shape, rank)
    s1 = align_shape(slot1_shape, rank)
    groups = {"A": [], "B": [], "C": []}
    for d in range(rank):
        if out_shape[d] == 1:
            continue
        if s0[d] == 1:
            groups["A"].append(d)
        elif s1[d] == 1:
            groups["B"].append(d)
        else:
            groups["C"].append(d)
    return PointwisePlan(*(_group(groups[g], out_shape, layouts) for g in "ABC"))


def plan_reduce(shape: Sequence[int], reduced: Sequence[int], layouts: dict) -> tuple[GroupPlan, GroupPlan]:
    """Split a tensor's axes into the reduced group R and the kept group K (axes of size 1
    dropped, contiguous neighbours merged), for the loss and row kernels."""
    reduced = set(reduced)
    r_dims = [d for d in range(len(shape)) if d in reduced and shape[d] != 1]
    k_dims = [d for d in range(len(shape)) if d not in reduced and shape[d] != 1]
    return _group(r_dims, shape, layouts), _group(k_dims, shape, layouts)
