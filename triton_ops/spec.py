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
import torch.autograd.forward_ad as _forward_ad

from . import eager, replay, runtime

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
    # An op that can form its gradients while forward intermediates are live (linear_cross_entropy)
    # declares ``forward_needs``: ``forward_saved`` and ``alloc`` then take ``needs=`` (per tensor
    # argument, the gradients the call will ask for; None: none), the routes passing it (eager:
    # ``ctx.needs_input_grad``; custom op: a trailing ``bool[]? needs=None`` argument that the public
    # function fills from grad mode and ``requires_grad``). A saved tensor may then be the one a
    # forward without ``needs`` saves or the one a forward with the VJP's ``needs`` saves.
    forward_needs: bool = False
    # Tensor arguments whose values the VJP never reads, only their layout (a bias whose gradient
    # is a column sum of g, add's operands): the eager Function keeps them as references, not as
    # saved tensors (no SavedVariable to make and unpack, no version check: changing their
    # values in place before the backward changes nothing it computes).
    vjp_layout_only: tuple = ()
    # Of those, the ones whose *shape* alone the VJP reads (sum's input: its gradient is g
    # broadcast back to that shape): the eager Function keeps the shape, not the tensor, so the
    # tensor's memory is freed when the caller drops it, as eager torch frees it. The VJP then
    # gets a ``ShapeOnly`` in its place (``.shape`` and nothing else).
    vjp_shape_only: tuple = ()
    # A VJP that may write its gradients over the saved statistics (linear_cross_entropy's formed
    # gradients, scaled in place: one |dX| + |dW| less at the peak) takes ``consume_saved=``; only
    # the eager Function, which owns its saved tensors, passes True, and only when the graph is
    # not retained (no later backward reads them: gradcheck and retain_graph keep a copy); the
    # custom op and raw calls leave their inputs alone.
    vjp_consumes_saved: bool = False
    tolerance: dict = field(default_factory=dict)   # dtype -> (rtol, atol) overrides
    extras: dict = field(default_factory=dict)      # family data (a unary op's scalar functions ...)
    flops: Callable | None = None                   # flops(*args) -> (fwd, bwd), for the matmul family
    # set by ``register``: the entry points (see there) and the launchers as declared
    fn: Callable | None = None
    custom_op: Any = None
    vjp_op: Any = None
    via_custom_op: Callable | None = None
    launchers: Any = None
    replays: Any = None      # the eager route's ``replay.ReplayCache`` (per call layout)

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

    def get(self, name: str, default=None):
        return self._ops.get(name, default)  # Mapping.get goes through __getitem__ and a KeyError

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


def _same_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a`` and ``b`` share their storage (a view made inside a custom op's
    implementation, below autograd, has no ``_base`` to tell it)."""
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def _no_double_backward(name: str):
    def backward(ctx, *grads):
        raise RuntimeError(f"triton_ops.{name}: double backward is not supported")
    return backward


# --------------------------------------------------------------------------------------------
# which route an eager call takes into autograd

_PLAIN = (torch.Tensor, torch.nn.Parameter)


def eager_route(values, tensor_args) -> bool:
    """True when a call may skip the ``torch.library`` custom op (about 8 µs of Python, 12.7 with
    autograd) for an ``autograd.Function`` or the bare launcher: plain eager execution on plain
    tensors. Anything that must see the op as one opaque node of its own - torch.compile and
    torch.export tracing, jit tracing, a TorchDispatchMode (FakeTensorMode, FlopCounter...),
    functorch transforms, forward-mode AD, tensor subclasses, meta tensors - takes the custom op.
    Both routes run the same launchers and kernels."""
    if (torch.compiler.is_compiling() or torch._C._len_torch_dispatch_stack() or torch._C._get_tracing_state()
            or torch._C._are_functorch_transforms_active() or _forward_ad._current_level >= 0):
        return False
    for i in tensor_args:
        v = values[i]
        if isinstance(v, torch.Tensor) and (type(v) not in _PLAIN or v.is_meta):
            return False
    return True



# --------------------------------------------------------------------------------------------
# from an OpSpec to its entry points


@dataclass(frozen=True)
class Launchers:
    """What the entry declared, kept as declared: the unvalidated launchers the kernels run
    behind. ``forward`` is None for ops whose forward is ``forward_saved``'s first output."""
    forward: Callable | None
    forward_saved: Callable | None
    vjp: Callable


def register(spec: OpSpec) -> OpSpec:
    """Build ``spec``'s entry points and add it to the registry:

    * ``spec.fn`` - the public function: bind, autocast, check, then the cheapest correct route
      (``eager_route``): the bare launcher, an ``autograd.Function``, or the custom op;
    * ``spec.custom_op`` / ``spec.vjp_op`` - ``torch.ops.triton_ops.<name>`` and ``<name>_vjp``
      (schema from the ``Arg`` list, fake kernels from ``alloc``/``vjp_alloc``, autograd),
      for torch.compile, torch.export, FakeTensorMode and opcheck; they validate their inputs;
    * ``spec.forward`` / ``spec.vjp`` - the raw launchers, validated (``check`` and, for the VJP,
      the upstream gradient and saved statistics), no autograd.

    The launchers the entry declared stay in ``spec.launchers``.
    """
    if spec.fn is not None or spec.name in registry:
        raise ValueError(f"triton_ops: an op named {spec.name!r} is already registered")
    if spec.forward is None and spec.forward_saved is None:
        raise ValueError(f"triton_ops.{spec.name}: an OpSpec declares forward or forward_saved")
    if not set(spec.vjp_layout_only) <= {a.name for a in spec.args if a.is_tensor}:
        raise ValueError(f"triton_ops.{spec.name}: vjp_layout_only names tensor arguments, got {spec.vjp_layout_only}")
    if not set(spec.vjp_shape_only) <= set(spec.vjp_layout_only):
        raise ValueError(f"triton_ops.{spec.name}: vjp_shape_only names vjp_layout_only arguments, "
                         f"got {spec.vjp_shape_only}")
    if bool(spec.n_saved) != (spec.forward_saved is not None):
        raise ValueError(f"triton_ops.{spec.name}: forward_saved and n_saved go together")
    spec.launchers = Launchers(spec.forward, spec.forward_saved, spec.vjp)
    routes = _Routes(spec)
    spec.forward, spec.vjp = routes.raw_forward, routes.raw_vjp
    spec.custom_op, spec.vjp_op = routes.custom_op, routes.vjp_op
    spec.replays = routes.replays
    spec.fn = routes.public_function()
    registry.add(spec)
    return spec


class _Routes:
    """The entry points of one op, all over the same declared launchers."""

    def __init__(self, spec: OpSpec):
        self.spec = spec
        self.name = spec.name
        self.args = spec.args
        self.n_saved = spec.n_saved
        self.tensor_args = tuple(spec.tensor_args)
        positions = _op_positions(spec.args)
        self.tensor_positions = [positions[i] for i in self.tensor_args]
        launchers = spec.launchers
        self.forward_saved = launchers.forward_saved
        self.forward = launchers.forward or (lambda *values: launchers.forward_saved(*values)[0])
        self.vjp = launchers.vjp
        self.custom_op, self.vjp_op = self._custom_ops()
        # eager calls replay their launchers' allocations and launches per call layout
        self.replays = replay.ReplayCache()

    # -- validation ------------------------------------------------------------------------

    def check_grad(self, values, grad, saved=None, needs=None):
        """The upstream gradient (and saved statistics) of a raw or custom-op VJP call must be
        what the forward of these arguments returns: shape, dtype, device. Nothing reads out of
        bounds because a caller passed something else."""
        meta = [v.to("meta") if isinstance(v, torch.Tensor) else v for v in values]
        out = self.spec.alloc(*meta)
        outs = tuple(out) if self.n_saved else (out,)
        if self.spec.forward_needs:  # a VJP's needs=None: every gradient
            formed = self.spec.alloc(*meta, needs=[True] * len(self.tensor_args) if needs is None else needs)
        else:
            formed = outs
        device = next(v.device for v in values if isinstance(v, torch.Tensor))
        expected = [("grad", grad, outs[0], outs[0])]
        if self.n_saved:
            if saved is None or len(saved) != self.n_saved:
                raise ValueError(f"triton_ops.{self.name}: saved must hold the forward's {self.n_saved} "
                                 f"statistics tensor(s), got {0 if saved is None else len(saved)}")
            expected += [(f"saved[{i}]", s, o, f) for i, (s, o, f) in enumerate(zip(saved, outs[1:], formed[1:]))]
        for arg, t, like, like_formed in expected:
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"triton_ops.{self.name}: {arg} must be a tensor, got {type(t).__name__}")
            if tuple(t.shape) not in (tuple(like.shape), tuple(like_formed.shape)):
                raise ValueError(f"triton_ops.{self.name}: {arg} has shape {tuple(t.shape)}, expected "
                                 f"{tuple(like.shape)} (the forward's output)")
            if t.dtype != like.dtype:
                raise TypeError(f"triton_ops.{self.name}: {arg} has dtype {t.dtype}, expected {like.dtype}")
            if t.device != device:
                raise ValueError(f"triton_ops.{self.name}: {arg} is on {t.device}, the arguments on {device}")

    # -- raw launchers (validated, no autograd) ----------------------------------------------

    def raw_forward(self, *a, **kw):
        return self.forward(*self.spec.check(*self.spec.bind(*a, **kw)))

    def raw_vjp(self, *a, needs=None, saved=None, **kw):
        *values, grad = a
        values = self.spec.check(*self.spec.bind(*values, **kw))
        if not self.n_saved:
            self.check_grad(values, grad)
            return self.vjp(*values, grad, needs=needs)
        if saved is None:  # a raw call without the forward's statistics: recompute them
            saved = list(self.forward_saved(*values)[1:])
        self.check_grad(values, grad, saved, needs)
        return self.vjp(*values, grad, needs=needs, saved=list(saved))

    # -- the eager autograd route ------------------------------------------------------------

    def _double_backward(self, values, saved, grad, needs):
        """A backward under ``create_graph``: the VJP custom op (which refuses a double backward)."""
        wanted = list(needs[2:])  # needs_input_grad: the Entry, the Python values, the tensors
        extra = [list(saved)] if self.n_saved else []
        grads = self.vjp_op(*_to_op_args(self.args, values), *extra, grad, wanted)
        return [g if n else None for g, n in zip(grads, wanted)]  # the op's empty placeholders

    # -- the torch.library route -------------------------------------------------------------

    def _custom_ops(self):
        args, n_saved, name, forward_needs = self.args, self.n_saved, self.name, self.spec.forward_needs
        returns = "Tensor" if not n_saved else "(" + ", ".join(["Tensor"] * (1 + n_saved)) + ")"
        needs_arg = ["bool[]? needs=None"] if forward_needs else []
        schema = "(" + ", ".join(_schema_args(args) + needs_arg) + ") -> " + returns
        n_op_args = len(_schema_args(args))
        vjp_extra = (["Tensor[] saved"] if n_saved else []) + ["Tensor grad", "bool[] needs"]
        vjp_schema = "(" + ", ".join(_schema_args(args) + vjp_extra) + ") -> Tensor[]"
        qual = f"triton_ops::{name}"

        def split_vjp_values(op_values):
            *values, grad, needs = op_values
            saved = values.pop() if n_saved else None
            return _from_op_args(args, values), saved, grad, list(needs)

        def needs_kw(op_values):
            if not forward_needs:
                return {}
            return {"needs": op_values[n_op_args] if len(op_values) > n_op_args else None}  # the schema default

        def fwd_impl(*op_values):
            values = self.spec.check(*_from_op_args(args, op_values[:n_op_args]))
            if n_saved:
                return tuple(_not_a_view(t) for t in self.forward_saved(*values, **needs_kw(op_values)))
            return _not_a_view(self.forward(*values))

        def fwd_fake(*op_values):
            out = self.spec.alloc(*_from_op_args(args, op_values[:n_op_args]), **needs_kw(op_values))
            return tuple(out) if n_saved else out

        def vjp_impl(*op_values):
            values, saved, grad, needs = split_vjp_values(op_values)
            values = self.spec.check(*values)
            self.check_grad(values, grad, saved, needs)
            kw = {"saved": list(saved)} if n_saved else {}
            grads = self.vjp(*values, grad, needs=needs, **kw)
            # a custom op may not return its input: a gradient that is g itself (add's) or a view of
            # it (sum's expand) is copied, in the contiguous layout vjp_alloc gives the fake
            return [grad.new_empty(0) if g is None else
                    g.clone(memory_format=torch.contiguous_format) if _same_memory(g, grad) else g
                    for g in grads]

        def vjp_fake(*op_values):
            values, _, grad, needs = split_vjp_values(op_values)
            grads = self.spec.vjp_alloc(*values, grad)
            return [g if (g is not None and n) else grad.new_empty(0) for g, n in zip(grads, needs)]

        custom = torch.library.custom_op(qual, fwd_impl, mutates_args=(), schema=schema)
        custom.register_fake(fwd_fake)
        vjp_op = torch.library.custom_op(f"{qual}_vjp", vjp_impl, mutates_args=(), schema=vjp_schema)
        vjp_op.register_fake(vjp_fake)
        tensor_positions = self.tensor_positions

        def setup_context(ctx, inputs, output):
            saved_outputs = list(output[1:]) if n_saved else []
            if saved_outputs:
                ctx.mark_non_differentiable(*saved_outputs)
                # their gradients are never read: no zeros of their shapes (linear_cross_entropy's
                # saved outputs are its formed dX and dW)
                ctx.set_materialize_grads(False)
            ctx.save_for_backward(*[inputs[p] for p in tensor_positions], *saved_outputs)
            ctx.op_inputs = [None if isinstance(v, torch.Tensor) else v for v in inputs[:n_op_args]]

        def backward(ctx, grad, *_saved_output_grads):
            values = list(ctx.op_inputs)
            saved_tensors = ctx.saved_tensors
            for p, t in zip(tensor_positions, saved_tensors):
                values[p] = t
            needs = [bool(ctx.needs_input_grad[p]) for p in tensor_positions]
            extra = [list(saved_tensors[len(tensor_positions):])] if n_saved else []
            grads = vjp_op(*values, *extra, grad, needs)
            out = [None] * (len(values) + len(needs_arg))  # no gradient for ``needs``
            for p, gr, n in zip(tensor_positions, grads, needs):
                out[p] = gr if n else None
            return tuple(out)

        custom.register_autograd(backward, setup_context=setup_context)
        vjp_op.register_autograd(_no_double_backward(name), setup_context=lambda ctx, inputs, output: None)
        return custom, vjp_op

    # -- the public function -----------------------------------------------------------------

    def public_function(self):
        spec, args, n_saved, tensor_args = self.spec, self.args, self.n_saved, self.tensor_args
        autocast = AUTOCAST.get(spec.family)
        custom, forward = self.custom_op, self.forward
        layout_key, run = replay.layout_key, replay.run
        context = LAUNCH_CONTEXT.get(spec.family)
        domain_checks_on = runtime.domain_checks_enabled

        is_tensor = tuple(a.is_tensor for a in args)
        calls = self.replays

        def first_check(key, values):
            """``check``, and the call's ``Entry`` (None without a layout key). A check that read
            no value (the interpreter's index range checks and domain checks do) depends on
            layouts and Python values only: the entry keeps its non-tensor results."""
            reads = runtime.value_reads()
            checked = spec.check(*values)
            if key is None:
                return checked, None
            entry = calls.entry(key)
            if runtime.value_reads() == reads and all(checked[i] is values[i] for i in tensor_args):
                # python_values first: the warm path reads it once it sees ``checked`` (threads)
                entry.python_values = tuple(v for v, t in zip(checked, is_tensor) if not t)
                entry.checked = tuple(None if t else v for v, t in zip(checked, is_tensor))
            return checked, entry

        def needs_of(values):
            """The custom op's trailing ``needs`` (``forward_needs``): its impl cannot see requires_grad."""
            if not spec.forward_needs:
                return ()
            grad = torch.is_grad_enabled()
            return ([grad and isinstance(values[i], torch.Tensor) and values[i].requires_grad for i in tensor_args],)

        def general(*values):
            """Every call the generated warm path (``eager.EagerPath``) does not answer."""
            if autocast is not None:
                values = _autocast(values, autocast)
            if eager_route(values, tensor_args):
                key = layout_key(values)
                if context is not None and key is not None:
                    key = (*key, context())
                entry = calls.get(key) if key is not None else None
                if entry is None or entry.checked is None or domain_checks_on():
                    values, entry = first_check(key, values)
                    if key is None:  # an object among the arguments (a Broadcast descriptor): checked away
                        key = layout_key(values)
                        if context is not None and key is not None:
                            key = (*key, context())
                        entry = key and calls.entry(key)
                else:  # the checked Python values (warm calls mostly take the generated path)
                    values = tuple(v if t else c for v, c, t in zip(values, entry.checked, is_tensor))
                if torch.is_grad_enabled():
                    for i in tensor_args:
                        v = values[i]
                        if isinstance(v, torch.Tensor) and v.requires_grad:
                            return path.apply_values(entry, values)
                return run(entry, "forward", values, forward, *values)
            values = spec.check(*values)
            out = custom(*_to_op_args(args, values), *needs_of(values))
            return out[0] if n_saved else out

        def via_custom_op(*a, **kw):
            """The public function forced onto the torch.library route (tests compare the routes)."""
            values = spec.bind(*a, **kw)
            if autocast is not None:
                values = _autocast(values, autocast)
            values = spec.check(*values)
            out = custom(*_to_op_args(args, values), *needs_of(values))
            return out[0] if n_saved else out

        path = eager.EagerPath(
            name=spec.name, args=args, tensor_args=tensor_args, n_saved=n_saved,
            forward_needs=spec.forward_needs, replays=calls,
            launcher=self.forward_saved if n_saved else forward, vjp=self.vjp,
            double=self._double_backward, general=general, not_a_view=_not_a_view,
            context=context, autocast=autocast is not None, layout_only=spec.vjp_layout_only,
            shape_only=spec.vjp_shape_only,
            consumes_saved=spec.vjp_consumes_saved)
        self.eager_path = path
        public = path.public
        public.__qualname__ = spec.name
        public.__signature__ = spec.signature
        public.__doc__ = spec.doc
        public.__module__ = "triton_ops"
        spec.via_custom_op = via_custom_op
        return public


# Global settings a family's launchers read (beside the arguments): part of a call's layout key,
# so that a replay recorded under one setting never answers a call under another.
LAUNCH_CONTEXT = {"matmul": torch.get_float32_matmul_precision}   # float32 GEMMs: IEEE or TF32


# Under torch.autocast, as PyTorch's own ops: the matmul family runs in the autocast dtype, norms
# and losses in float32; every other op in its inputs' dtype.
AUTOCAST = {"matmul": "lower", "norm": "float32", "loss": "float32"}


def _autocast(values, policy):
    if not torch._C._is_any_autocast_enabled():
        return values
    for v in values:
        if isinstance(v, torch.Tensor):
            device_type = v.device.type
            break
    else:
        return values
    if device_type == "meta" or not torch.is_autocast_enabled(device_type):  # meta: no autocast
        return values
    dtype = torch.get_autocast_dtype(device_type) if policy == "lower" else torch.float32
    return tuple(v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v for v in values)


def needs_all(spec_args: Sequence[Arg], values: Sequence, needs) -> list[bool]:
    """Default ``needs`` of a raw VJP call: every tensor argument that is a tensor (or stands for
    one: ``eager.ShapeOnly``)."""
    tensor_values = [v for a, v in zip(spec_args, values) if a.is_tensor]
    if needs is None:
        return [isinstance(v, _TENSOR_LIKE) for v in tensor_values]
    return [bool(n) and isinstance(v, _TENSOR_LIKE) for n, v in zip(needs, tensor_values)]


_TENSOR_LIKE = (torch.Tensor, eager.ShapeOnly)
