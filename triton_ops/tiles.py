"""``@triton.jit`` helpers the kernel templates share: strided offsets and operand loads.

Operands reach a kernel in one of the ``Operand`` modes (a ``tl.constexpr``; the kernels
compare its integer value).
"""
import enum
import functools
import struct

import numpy as np

import triton
import triton.language as tl

from .runtime import INTERPRETER


def helper(fn):
    """A ``@triton.jit`` helper on the GPU; a plain function under the interpreter, which runs
    kernels as Python and would otherwise re-patch ``triton.language`` on every nested call
    (about 1 ms each: most of a small launch's time)."""
    return fn if INTERPRETER else triton.jit(fn)


class Operand(enum.IntEnum):
    """How a kernel reads an operand (``X_MODE``, ``Y_MODE``, ``G_MODE``)."""
    ABSENT = 0   # not read (the scalar function does not need it); 0 is passed in its place
    TENSOR = 1   # read through its own strides
    VALUE = 2    # a Python number: for float32 math two float32 halves (hi + lo; Triton passes
                 # Python floats as float32), for float64 math its IEEE bits as an int, bitcast
                 # back in the kernel (every bit, the whole exponent range: 1e300 stays 1e300)
    ELEMENT = 3  # a one-element tensor, read once per program
    ROW = 4      # the upstream gradient, constant along B (a sum's gradient broadcast back)


def split_float(v: float, compute) -> tuple:
    """``v`` as the two kernel arguments ``joined`` reads back in ``compute`` (a ``tl`` dtype;
    see ``Operand.VALUE``)."""
    # Cached by the bits, not the value: 0.0 == -0.0 would share a cache entry and lose a sign.
    return _split(struct.pack("<d", float(v)), compute == tl.float64)


@functools.lru_cache(maxsize=1024)
def _split(bits: bytes, wide: bool) -> tuple:
    if wide:
        return struct.unpack("<q", bits)[0], 0
    v = struct.unpack("<d", bits)[0]
    with np.errstate(over="ignore"):  # a float32 overflow is inf, as float32 math would give
        hi = float(np.float32(v))
    lo = float(np.float32(v - hi)) if hi == hi and abs(hi) != float("inf") else 0.0
    # hi + lo must keep hi's sign at -0.0: an exact hi gets lo = -0.0 (x + -0.0 == x for every x)
    return hi, (lo if lo != 0.0 else -0.0)


@helper
def group_offsets(idx, sizes, strides):
    """Offset of linear index ``idx`` (row-major over ``sizes``) in a tensor of ``strides``."""
    if len(sizes) == 1:
        off = idx * strides[0]
    else:
        off = idx * 0
        rem = idx
        for k in tl.static_range(len(sizes)):  # innermost axis first
            off += (rem % sizes[len(sizes) - 1 - k]) * strides[len(sizes) - 1 - k]
            rem = rem // sizes[len(sizes) - 1 - k]
    return off


@helper
def c_offsets(idx, sizes, strides, inner):
    """``group_offsets`` of the C group, whose innermost stride ``inner`` is a kernel argument of
    its own: Triton specializes it (1 -> contiguous), which lets loads and stores vectorize."""
    if len(sizes) == 1:
        off = idx * inner
    else:
        off = (idx % sizes[len(sizes) - 1]) * inner
        rem = idx // sizes[len(sizes) - 1]
        for k in tl.static_range(1, len(sizes)):
            off += (rem % sizes[len(sizes) - 1 - k]) * strides[len(sizes) - 1 - k]
            rem = rem // sizes[len(sizes) - 1 - k]
    return off


@helper
def tile_of_program(groups, C, x_ptr, numbers, x_b, x_c, x_c1, X_MODE: tl.constexpr, COMPUTE: tl.constexpr,
                    BLOCK_B: tl.constexpr, BLOCK_C: tl.constexpr, INDEX_64: tl.constexpr, A_ROWS: tl.constexpr = False):
    """This program's tile of the B x C axes (row and column indices), its B block, its chunk
    of the A axes (from a 1-D grid ordered C blocks fastest) with its loop bounds, the column
    mask [1, BLOCK_C], the tile mask [BLOCK_B, BLOCK_C], the slot-0 operand's tile (read once:
    it is constant along A) and the op's parameter. ``groups`` is (A sizes, B sizes, C sizes,
    A, B, C, A steps per program); ``numbers`` is (x hi, x lo, y hi, y lo, param hi, param lo, ...).
    ``A_ROWS`` (B = 1): the tile's rows are A steps, along which x is constant: every row of x's
    tile is its one row."""
    A, B, a_per_program = groups[3], groups[4], groups[5]
    pid = tl.program_id(0)
    n_c = (C + BLOCK_C - 1) // BLOCK_C
    n_b = (B + BLOCK_B - 1) // BLOCK_B
    pid_b = (pid // n_c) % n_b
    chunk = pid // (n_c * n_b)
    rb = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    rc = (pid % n_c) * BLOCK_C + tl.arange(0, BLOCK_C)
    if INDEX_64:
        rb = rb.to(tl.int64)
        rc = rc.to(tl.int64)
        pid_b = pid_b.to(tl.int64)
        chunk = chunk.to(tl.int64)
    a_start = chunk * a_per_program
    a_stop = tl.minimum(a_start + a_per_program, A)
    mask_c = (rc < C)[None, :]
    mask = (rb < B)[:, None] & mask_c
    if A_ROWS:  # x's one row, [1, BLOCK_C], broadcast where it is used: a thread holds its columns
        # once, not once per tile row (sm_90, div's VJP at 64 x 64: 94 -> 80 registers)
        x_offsets, x_mask = c_offsets(rc, groups[2], x_c, x_c1)[None, :], mask_c
    else:
        x_offsets, x_mask = tile_offsets(rb, rc, groups, x_b, x_c, x_c1), mask
    x = load_operand(x_ptr, numbers[0], numbers[1], x_offsets, x_mask, X_MODE, COMPUTE)
    return rb, rc, pid_b, chunk, a_start, a_stop, mask_c, mask, x, joined(numbers[4], numbers[5], COMPUTE)


@helper
def tile_offsets(rb, rc, groups, b_strides, c_strides, c_inner):
    """2-D offsets of a [rows, cols] tile in a tensor of the given B and C group strides."""
    return group_offsets(rb, groups[1], b_strides)[:, None] + c_offsets(rc, groups[2], c_strides, c_inner)[None, :]


@helper
def joined(hi, lo, COMPUTE: tl.constexpr):
    """The number ``split_float(v, COMPUTE)`` passed as (hi, lo)."""
    if COMPUTE == tl.float64:
        v = tl.cast(tl.cast(hi, tl.int64), tl.float64, bitcast=True)
    else:
        v = tl.cast(hi, COMPUTE) + tl.cast(lo, COMPUTE)
    return v


@helper
def load_operand(ptr, hi, lo, offs, mask, MODE: tl.constexpr, COMPUTE: tl.constexpr):
    if MODE == 1:
        v = tl.load(ptr + offs, mask=mask, other=0.0).to(COMPUTE)
    elif MODE == 3:
        v = tl.load(ptr).to(COMPUTE)
    elif MODE == 2:
        v = joined(hi, lo, COMPUTE)
    else:
        v = tl.zeros([1], COMPUTE).sum(axis=0)
    return v


@helper
def call(FN: tl.constexpr, x, y, p, ARITY: tl.constexpr, HAS_PARAM: tl.constexpr, SWAP: tl.constexpr):
    """``FN(x[, y][, p])``: the op's scalar function at its own arity (``FN(y, x)`` when the
    launcher swapped the two operand slots)."""
    if SWAP:
        r = call(FN, y, x, p, ARITY, HAS_PARAM, False)
    elif ARITY == 2:
        if HAS_PARAM:
            r = FN(x, y, p)
        else:
            r = FN(x, y)
    else:
        if HAS_PARAM:
            r = FN(x, p)
        else:
            r = FN(x)
    return r


@helper
def rows_of_program(R, r_sizes, a_strides, b_strides, BLOCK_R: tl.constexpr, INDEX_64: tl.constexpr):
    """This program's BLOCK_R rows of a row kernel, their mask, and their offsets in two tensors."""
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    if INDEX_64:
        rows = rows.to(tl.int64)
    return rows, rows < R, group_offsets(rows, r_sizes, a_strides), group_offsets(rows, r_sizes, b_strides)


@helper
def load_tile(ptr, row_offsets, cols, c_sizes, c_strides, c_inner, mask, COMPUTE: tl.constexpr):
    """A [rows, cols] tile (rows given by their offsets), as COMPUTE, 0 where masked."""
    offs = row_offsets[:, None] + c_offsets(cols, c_sizes, c_strides, c_inner)[None, :]
    return tl.load(ptr + offs, mask=mask, other=0.0).to(COMPUTE)


@helper
def slice_tiles(c0, C, row_mask, x_ptr, x_row, t_ptr, t_row, c_sizes, x_c, t_c, COMPUTE: tl.constexpr,
                BLOCK_C: tl.constexpr, INDEX_64: tl.constexpr):
    """Columns [c0, c0 + BLOCK_C) of a row kernel's slices: the column indices, the mask and the
    x and t tiles."""
    cols = c0 + tl.arange(0, BLOCK_C)
    if INDEX_64:
        cols = cols.to(tl.int64)
    mask = row_mask[:, None] & (cols < C)[None, :]
    x = load_tile(x_ptr, x_row, cols, c_sizes, x_c, x_c[len(x_c) - 1], mask, COMPUTE)
    t = load_tile(t_ptr, t_row, cols, c_sizes, t_c, t_c[len(t_c) - 1], mask, COMPUTE)
    return cols, mask, x, t


@helper
def row_range(rows_per_program, R):
    """The rows [start, stop) of this program in a kernel that walks rows_per_program rows."""
    start = tl.program_id(0) * rows_per_program
    return start, tl.minimum(start + rows_per_program, R)


@helper
def row_share(R, BLOCK_R: tl.constexpr):
    """The rows [start, stop) of this program in a persistent row kernel: an equal share (to one
    block) of the row blocks, contiguous, so that the row loop steps by the constant BLOCK_R."""
    steps = (R + BLOCK_R - 1) // BLOCK_R
    pid = tl.program_id(0).to(tl.int64)
    programs = tl.num_programs(0)
    return (pid * steps // programs) * BLOCK_R, tl.minimum(((pid + 1) * steps // programs) * BLOCK_R, R)


@helper
def row_block(r0, stop, BLOCK_R: tl.constexpr):
    rows = (r0 + tl.arange(0, BLOCK_R)).to(tl.int64)
    return rows, rows < stop


@helper
def block_span(start, BLOCK: tl.constexpr, INDEX_64: tl.constexpr):
    """The indices [start, start + BLOCK) of one block of a loop or a grid, int64 when an offset
    formed from them may pass int32."""
    idx = start + tl.arange(0, BLOCK)
    if INDEX_64:
        idx = idx.to(tl.int64)
    return idx


@helper
def block_columns(BLOCK: tl.constexpr, INDEX_64: tl.constexpr):
    """The column indices [0, BLOCK) of a row kernel's tile, int64 when a column offset may pass
    int32 (``row_block``'s rows are int64 already)."""
    return block_span(0, BLOCK, INDEX_64)


@helper
def column_chunk(R, C, rows_per_program, BLOCK_C: tl.constexpr, INDEX_64: tl.constexpr):
    """This program's chunk of rows [start, stop) and BLOCK_C columns (with their mask) in a
    column-sum kernel whose programs each write one partial row (``launchers/reduce.column_chunks``)."""
    n_c = tl.cdiv(C, BLOCK_C)
    chunk = tl.program_id(0) // n_c
    cols = (tl.program_id(0) % n_c) * BLOCK_C + tl.arange(0, BLOCK_C)
    if INDEX_64:
        chunk = chunk.to(tl.int64)
        cols = cols.to(tl.int64)
    start = chunk * rows_per_program
    return chunk, cols, cols < C, start, tl.minimum(start + rows_per_program, R)
