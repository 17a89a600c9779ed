"""``OpSpec`` and the registry: from one entry come the public function, its ``torch.library``
custom op (with fake kernel and autograd), the tests and the benchmark rows.

An entry declares its arguments once (``Arg``); everything that needs a schema, a Python
signature or the positions of the differentiable arguments derives it from that list.
"""
from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

REQUIRED = inspect.Parameter.empty

# Argument kinds and their schema types. "operand" is a tensor or a Python number: in the
# custom op it is the pair (Tensor? name, float name_value). "python" arguments (a Broadcast
# descriptor) are checked by the public function and never reach the custom op.
_SCHEMA = {
    "tensor": "Tensor", "tensor?": "Tensor?", "float": "float", "int": "int", "bool": "bool",
    "str": "str", "str?": "str?", "int[]": "int[]", "int[]?": "int[]?", "int?": "int?",
}
TENSOR_KINDS = ("tensor", "tensor?", "operand")


@dataclass(frozen=True)
class Arg:
    name: str
    kind: str = "tensor"
    default: Any = REQUIRED

    @property
    def is_tensor(self) -> bool:
        return self.kind in TENSOR_KINDS


@dataclass(eq=False)
class OpSpec:
    """One op: its Triton launchers, its pure-torch reference and what the tools need to know.

    forward(*args) -> Tensor            the raw forward launcher (no autograd)
    vjp(*args, grad, needs=None)        the raw VJP launcher: one gradient per tensor argument,
                                        each of exactly that argument's shape (None where not
                                        wanted or not a tensor)
    reference(*args) -> Tensor          the SPEC.md math in plain torch (tests compare to it)
    check(*args) -> args                validates and normalizes the arguments (raises)
    alloc(*args) -> Tensor              the output allocation, shared by forward and fake
    vjp_alloc(*args, grad) -> list      the gradients' allocation (layout), shared by vjp and fake
    min_bytes(*args) -> (fwd, bwd)      the fewest bytes forward and VJP must move
    sample(shape, dtype, device, gen)   arguments for tests and benchmarks
    """
    name: str
    family: str
    args: tuple[Arg, ...]
    forward: Callable
    vjp: Callable
    reference: Callable
    fwd_kernels: tuple
    bwd_kernels: tuple
    check: Callable
    alloc: Callable
    vjp_alloc: Callable
    min_bytes: Callable
    sample: Callable
    doc: str = ""
    # Ops whose backward needs a few per-row statistics of the forward (log-sum-exp, norms,
    # mean/rstd) save them: ``forward_saved(*args) -> (out, *saved)`` and ``vjp(..., saved=)``.
    forward_saved: Callable | None = None
    n_saved: int = 0
    tolerance: dict = field(default_factory=dict)   # dtype -> (rtol, atol) overrides
    extras: dict = field(default_factory=dict)      # family data (a unary op's scalar functions ...)
    flops: Callable | None = None                   # flops(*args) -> (fwd, bwd), for the matmul family
    fn: Callable | None = None
    custom_op: Any = None
    vjp_op: Any = None

    @property
    def tensor_args(self) -> list[int]:
        return [i for i, a in enumerate(self.args) if a.is_tensor]

    @property
    def signature(self) -> inspect.Signature:
        params = [inspect.Parameter(a.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=a.default)
                  for a in self.args]
        return inspect.Signature(params)

    def default_needs(self, values) -> list[bool]:
        """The gradients ``min_bytes`` (and the benchmarks) assume: every floating tensor
        argument, except for losses, where only the prediction's (targets rarely need one)."""
        needs = [isinstance(values[i], torch.Tensor) and values[i].is_floating_point() for i in self.tensor_args]
        if self.family == "loss":
            needs = [needs[0]] + [False] * (len(needs) - 1)
        return needs

    def bind(self, *args, **kwargs) -> tuple:
        """Positional values of every argument, defaults filled in (plain Python rather than
        ``inspect.Signature.bind``: cheaper per call, and torch.compile traces it)."""
        if len(args) > len(self.args):
            raise TypeError(f"triton_ops.{self.name}: takes {len(self.args)} arguments, got {len(args)}")
        values = list(args)
        for a in self.args[len(args):]:
            if a.name in kwargs:
                values.append(kwargs.pop(a.name))
            elif a.default is not REQUIRED:
                values.append(a.default)
            else:
                raise TypeError(f"triton_ops.{self.name}: missing argument {a.name!r}")
        if kwargs:
            raise TypeError(f"triton_ops.{self.name}: unexpected or repeated argument(s) {sorted(kwargs)}")
        return tuple(values)

    def __repr__(self) -> str:
        return f"OpSpec({self.name!r}, family={self.family!r})"


class Registry(Mapping):
    def __init__(self):
        self._ops: dict[str, OpSpec] = {}

    def __getitem__(self, name: str) -> OpSpec:
        try:
            return self._ops[name]
        except KeyError:
            raise KeyError(f"triton_ops.registry: no op named {name!r}; known: {sorted(self._ops)}") from None

    def __iter__(self):
        return iter(self._ops)

    def __len__(self) -> int:
        return len(self._ops)

    def add(self, spec: OpSpec) -> None:
        if spec.name in self._ops:
            raise ValueError(f"triton_ops: an op named {spec.name!r} is already registered")
        self._ops[spec.name] = spec


registry = Registry()


# --------------------------------------------------------------------------------------------
# from an OpSpec to a custom op with autograd


def _schema_args(args: Sequence[Arg]) -> list[str]:
    out = []
    for a in args:
        if a.kind == "python":
            continue
        if a.kind == "operand":
            out += [f"Tensor? {a.name}", f"float {a.name}_value"]
        else:
            out.append(f"{_SCHEMA[a.kind]} {a.name}")
    return out


def _to_op_args(args: Sequence[Arg], values: Sequence) -> list:
    """Public values -> custom-op values (an operand becomes tensor-or-None plus a float)."""
    out = []
    for a, v in zip(args, values):
        if a.kind == "python":
            continue
        if a.kind == "operand":
            out += [v, 0.0] if isinstance(v, torch.Tensor) else [None, float(v)]
        elif a.kind in ("int[]", "int[]?") and v is not None:
            out.append(list(v))
        else:
            out.append(v)
    return out


def _from_op_args(args: Sequence[Arg], values: Sequence) -> list:
    out, i = [], 0
    for a in args:
        if a.kind == "python":
            out.append(None)
            continue
        if a.kind == "operand":
            out.append(values[i] if values[i] is not None else values[i + 1])
            i += 2
        else:
            out.append(values[i])
            i += 1
    return out


def _op_positions(args: Sequence[Arg]) -> list[int]:
    """Custom-op input position of each public argument."""
    pos, i = [], 0
    for a in args:
        pos.append(i)
        i += {"operand": 2, "python": 0}.get(a.kind, 1)
    return pos


def _not_a_view(t: torch.Tensor) -> torch.Tensor:
    """``t`` itself when it owns its memory; else the same memory as a tensor that is not a view
    (no copy). A launcher may reshape its result with ``.view``, but a custom op's output that is
    a view cannot be modified in place under autograd (``nn.ReLU(inplace=True)`` after it)."""
    if t._base is None:
        return t
    return t.new_empty(0).set_(t.untyped_storage(), t.storage_offset(), t.shape, t.stride())


def _no_double_backward(name: str):
    def backward(ctx, *grads):
        raise RuntimeError(f"triton_ops.{name}: double backward is not supported")
    return backward


def register(spec: OpSpec) -> OpSpec:
    """Build ``spec``'s custom ops (forward and VJP), autograd, and public function."""
    args = spec.args
    n_tensor = len(spec.tensor_args)
    n_saved = spec.n_saved
    returns = "Tensor" if not n_saved else "(" + ", ".join(["Tensor"] * (1 + n_saved)) + ")"
    schema = "(" + ", ".join(_schema_args(args)) + ") -> " + returns
    vjp_extra = (["Tensor[] saved"] if n_saved else []) + ["Tensor grad", "bool[] needs"]
    vjp_schema = "(" + ", ".join(_schema_args(args) + vjp_extra) + ") -> Tensor[]"
    qual = f"triton_ops::{spec.name}"

    def fwd_impl(*op_values):
        public = _from_op_args(args, op_values)
        if n_saved:
            return tuple(_not_a_view(t) for t in spec.forward_saved(*public))
        return _not_a_view(raw_forward(*public))

    def fwd_fake(*op_values):
        out = spec.alloc(*_from_op_args(args, op_values))
        return tuple(out) if n_saved else out

    def split_vjp_values(op_values):
        *values, grad, needs = op_values
        saved = values.pop() if n_saved else None
        return values, saved, grad, needs

    def vjp_impl(*op_values):
        values, saved, grad, needs = split_vjp_values(op_values)
        kw = {"saved": list(saved)} if n_saved else {}
        grads = raw_vjp(*_from_op_args(args, values), grad, needs=list(needs), **kw)
        return [g if g is not None else grad.new_empty(0) for g in grads]

    def vjp_fake(*op_values):
        values, _, grad, needs = split_vjp_values(op_values)
        public = _from_op_args(args, values)
        grads = spec.vjp_alloc(*public, grad)
        return [g if (g is not None and n) else grad.new_empty(0) for g, n in zip(grads, needs)]

    if spec.forward is None:  # ops with saved statistics: the forward is their first output
        spec.forward = lambda *values: spec.forward_saved(*values)[0]
    raw_forward, raw_vjp = spec.forward, spec.vjp

    # The raw launchers validate and normalize their arguments like the public function (a
    # negative dim, say), so that a kernel never sees what the checks would have refused.
    def forward(*a, **kw):
        return raw_forward(*spec.check(*spec.bind(*a, **kw)))

    def vjp(*a, needs=None, saved=None, **kw):
        *values, grad = a
        values = spec.check(*spec.bind(*values, **kw))
        if not n_saved:
            return raw_vjp(*values, grad, needs=needs)
        if saved is None:  # a raw call without the forward's statistics: recompute them
            saved = list(spec.forward_saved(*values)[1:])
        return raw_vjp(*values, grad, needs=needs, saved=saved)

    forward.__doc__ = f"Raw forward launcher of {spec.name} (no autograd)."
    vjp.__doc__ = (f"Raw VJP launcher of {spec.name}: vjp(*args, grad, needs=None) -> one gradient per "
                   "tensor argument (exact shapes), no autograd.")
    spec.forward, spec.vjp = forward, vjp

    custom = torch.library.custom_op(qual, fwd_impl, mutates_args=(), schema=schema)
    custom.register_fake(fwd_fake)
    vjp_op = torch.library.custom_op(f"{qual}_vjp", vjp_impl, mutates_args=(), schema=vjp_schema)
    vjp_op.register_fake(vjp_fake)
    positions = _op_positions(args)
    tensor_positions = [positions[i] for i in spec.tensor_args]

    def setup_context(ctx, inputs, output):
        saved_outputs = list(output[1:]) if n_saved else []
        if saved_outputs:
            ctx.mark_non_differentiable(*saved_outputs)
        ctx.save_for_backward(*[inputs[p] for p in tensor_positions], *saved_outputs)
        ctx.op_inputs = [None if isinstance(v, torch.Tensor) else v for v in inputs]

    def backward(ctx, grad, *_saved_output_grads):
        values = list(ctx.op_inputs)
        saved_tensors = ctx.saved_tensors
        for p, t in zip(tensor_positions, saved_tensors):
            values[p] = t
        needs = [bool(ctx.needs_input_grad[p]) for p in tensor_positions]
        extra = [list(saved_tensors[len(tensor_positions):])] if n_saved else []
        grads = vjp_op(*values, *extra, grad, needs)
        out = [None] * len(values)
        for p, gr, n in zip(tensor_positions, grads, needs):
            out[p] = gr if n else None
        return tuple(out)

    custom.register_autograd(backward, setup_context=setup_context)
    vjp_op.register_autograd(_no_double_backward(spec.name), setup_context=lambda ctx, inputs, output: None)

    sig = spec.signature

    autocast = AUTOCAST.get(spec.family)

    def public(*a, **kw):
        values = spec.bind(*a, **kw)
        if autocast is not None:
            values = _autocast(values, autocast)
        values = spec.check(*values)
        out = custom(*_to_op_args(args, values))
        return out[0] if n_saved else out

    public.__name__ = spec.name
    public.__qualname__ = spec.name
    public.__signature__ = sig
    public.__doc__ = spec.doc
    public.__module__ = "triton_ops"
    spec.fn, spec.custom_op, spec.vjp_op = public, custom, vjp_op
    assert n_tensor >= 1
    registry.add(spec)
    return spec


# Under torch.autocast, as PyTorch's own ops: the matmul family runs in the autocast dtype, norms
# and losses in float32; every other op in its inputs' dtype.
AUTOCAST = {"matmul": "lower", "norm": "float32", "loss": "float32"}


def _autocast(values, policy):
    device_type = next((v.device.type for v in values if isinstance(v, torch.Tensor)), None)
    if device_type in (None, "meta") or not torch.is_autocast_enabled(device_type):  # meta: no autocast
        return values
    dtype = torch.get_autocast_dtype(device_type) if policy == "lower" else torch.float32
    return tuple(v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v for v in values)


def needs_all(spec_args: Sequence[Arg], values: Sequence, needs) -> list[bool]:
    """Default ``needs`` of a raw VJP call: every tensor argument that is a tensor."""
    tensor_values = [v for a, v in zip(spec_args, values) if a.is_tensor]
    if needs is None:
        return [isinstance(v, torch.Tensor) for v in tensor_values]
    return [bool(n) and isinstance(v, torch.Tensor) for n, v in zip(needs, tensor_values)]
