"""Broadcast descriptors and the iteration plan the pointwise kernels run on (pure shape logic).

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


def _aligned(shape: Sequence[int], rank: int) -> tuple[int, ...]:
    return (1,) * (rank - len(shape)) + tuple(shape)


def broadcast_shapes(op: str, a_shape, b_shape) -> torch.Size:
    a, b = tuple(a_shape), tuple(b_shape)
    rank = max(len(a), len(b))
    out = []
    for sa, sb in zip(_aligned(a, rank), _aligned(b, rank)):
        if sa == sb or sb == 1:
            out.append(sa)
        elif sa == 1:
            out.append(sb)
        else:
            raise ValueError(f"triton_ops.{op}: cannot broadcast lhs shape {a} with rhs shape {b}")
    return torch.Size(out)


class Broadcast:
    """How two operand shapes broadcast to one output shape (right-aligned, as PyTorch).

    ``expanded_axes(i)``: output axes along which operand ``i`` is repeated (its size there is 1
    or the axis is missing, and the output's size is > 1).
    ``reduce_axes(i)``: output axes a gradient is summed over to come back to operand ``i``'s
    shape: the expanded axes plus any leading axes the operand lacks (summed, then dropped).
    """

    def __init__(self, a_shape, b_shape, op: str = "Broadcast.infer"):
        self.shapes = (torch.Size(a_shape), torch.Size(b_shape))
        self.out_shape = broadcast_shapes(op, a_shape, b_shape)

    @classmethod
    def infer(cls, a_shape, b_shape) -> "Broadcast":
        return cls(a_shape, b_shape)

    def _check_operand(self, i: int) -> None:
        if i not in (0, 1):
            raise ValueError(f"triton_ops.Broadcast: operand index must be 0 (lhs) or 1 (rhs), got {i}")

    def expanded_axes(self, i: int) -> tuple[int, ...]:
        self._check_operand(i)
        rank = len(self.out_shape)
        shape = _aligned(self.shapes[i], rank)
        return tuple(d for d in range(rank) if shape[d] == 1 and self.out_shape[d] != 1)

    def reduce_axes(self, i: int) -> tuple[int, ...]:
        self._check_operand(i)
        rank = len(self.out_shape)
        missing = rank - len(self.shapes[i])
        return tuple(sorted(set(range(missing)) | set(self.expanded_axes(i))))

    def reduce_back(self, g: torch.Tensor, i: int) -> torch.Tensor:
        """Sum ``g`` (of ``out_shape``) back to operand ``i``'s shape with a Triton kernel."""
        self._check_operand(i)
        if tuple(g.shape) != tuple(self.out_shape):
            raise ValueError(
                f"triton_ops.Broadcast.reduce_back: g has shape {tuple(g.shape)}, expected {tuple(self.out_shape)}")
        from .ops.shape import reduce_to

        return reduce_to(g, self.shapes[i])

    def check(self, op: str, a_shape, b_shape) -> None:
        if (torch.Size(a_shape), torch.Size(b_shape)) != self.shapes:
            raise ValueError(
                f"triton_ops.{op}: broadcast descriptor was built for shapes {tuple(self.shapes[0])} and "
                f"{tuple(self.shapes[1])}, got lhs {tuple(a_shape)} and rhs {tuple(b_shape)}")

    def __repr__(self) -> str:
        return (f"Broadcast(lhs={tuple(self.shapes[0])}, rhs={tuple(self.shapes[1])}, "
                f"out={tuple(self.out_shape)})")

    def __eq__(self, other) -> bool:
        return isinstance(other, Broadcast) and self.shapes == other.shapes

    def __hash__(self) -> int:
        return hash(self.shapes)


# --------------------------------------------------------------------------------------------
# iteration plan for the pointwise kernels


def aligned_strides(t: torch.Tensor, out_shape: Sequence[int]) -> tuple[int, ...]:
    """``t``'s strides over the output's axes: 0 where ``t`` is broadcast (size 1 or missing)."""
    rank = len(out_shape)
    shape = _aligned(t.shape, rank)
    strides = (0,) * (rank - t.dim()) + tuple(t.stride())
    return tuple(0 if s == 1 else st for s, st in zip(shape, strides))


def contiguous_strides(shape: Sequence[int], out_shape: Sequence[int]) -> tuple[int, ...]:
    """Strides of a fresh contiguous tensor of ``shape``, over the output's axes."""
    rank = len(out_shape)
    shape = _aligned(shape, rank)
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
    s0 = _aligned(slot0_shape, rank)
    s1 = _aligned(slot1_shape, rank)
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
