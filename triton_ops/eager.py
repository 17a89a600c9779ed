"""The eager route's warm path, generated per op.

A warm eager call (a call layout already checked and recorded, see ``replay``) needs little:
the layout key of its arguments, one dictionary lookup, and the forward's replay - inside an
``autograd.Function`` when a gradient is wanted, whose backward looks up the VJP's replay by the
gradient's layout. Written as a generic loop over an op's arguments, that is a few µs of tuple
building and slicing per call; ``EagerPath`` writes it instead as straight-line Python for the
op's own argument list (``source``), as ``replay`` writes a launcher call: the public signature
binds the arguments, each argument's key is one expression for its kind, and the forward and
backward unpack exactly the tensors they saved.

Every case the warm path does not cover - a layout not seen yet or whose check must run again
(domain checks on, a check that reads values), autocast, tracing (torch.compile, torch.export,
jit), a dispatch mode, functorch, forward-mode AD, tensor subclasses and meta tensors, a launch
hook, double backward, saved-tensor hooks - goes to the general code in ``spec`` that the warm
path abbreviates, with the same keys and the same replays.
"""
from __future__ import annotations

import inspect

import torch
import torch.autograd.forward_ad as _forward_ad

from . import replay, runtime

_PLAIN_TENSORS = (torch.Tensor, torch.nn.Parameter)
_NUMBERS = (int, float, bool)
_TENSOR_KINDS = ("tensor", "tensor?", "operand")
REQUIRED = inspect.Parameter.empty
_TENSOR_KEY = replay.TENSOR_KEY

# what ``replay.value_key`` makes of a value of each argument kind, as one inline expression
# (the kind's usual Python type inline, anything else through ``value_key``)
_VALUE_KEYS = {
    "float": "(" + replay.FLOAT_KEY + " if {0}.__class__ is float else _value_key({0}))",
    "int": "((int, {0}) if {0}.__class__ is int else _value_key({0}))",
    "bool": "((bool, {0}) if {0}.__class__ is bool else _value_key({0}))",
    "str": "((str, {0}) if {0}.__class__ is str else _value_key({0}))",
    "int[]": "(_sequence_key({0}) if {0}.__class__ is list or {0}.__class__ is tuple else _value_key({0}))",
}


class ShapeOnly:
    """A tensor argument whose shape alone its op's VJP reads (``OpSpec.vjp_shape_only``), as the
    VJP gets it from the eager Function: the shape and dtype, not the tensor, were kept."""
    __slots__ = ("shape", "dtype")

    def __init__(self, shape, dtype):
        self.shape, self.dtype = shape, dtype

    def like(self, grad: torch.Tensor) -> torch.Tensor:
        """A tensor of this shape and dtype on grad's device, one element of memory (stride-0
        axes), for the VJP custom op, which takes tensors (``create_graph``)."""
        return grad.new_empty((), dtype=self.dtype).expand(self.shape)


def _tensor_ok(name: str) -> str:
    return f"({name}.__class__ in _PLAIN_TENSORS and not {name}.is_meta)"


class EagerPath:
    """An op's generated warm path: ``public`` (the public function, ``general`` behind it) and
    ``function`` (the ``autograd.Function`` whose forward and backward both the warm path and
    ``general`` apply).

    ``args``: the op's ``Arg`` list; ``tensor_args``: the positions of its tensor arguments;
    ``launcher``: the forward launcher the Function runs (``forward_saved`` when ``n_saved``);
    ``vjp``: the VJP launcher;
    ``double``: ``double(values, saved, grad, needs) -> grads`` for a backward under
    ``create_graph`` (the VJP custom op); ``context``: a global setting in the layout key (the
    float32 matmul precision) or None; ``autocast``: whether ``general`` applies an autocast
    policy (the warm path then leaves autocast regions to it); ``layout_only``: the names of
    tensor arguments whose values the VJP never reads (``OpSpec.vjp_layout_only``), of which
    ``shape_only`` reach it as a ``ShapeOnly`` (``OpSpec.vjp_shape_only``);
    ``consumes_saved``: the VJP may write over the saved statistics (``OpSpec.vjp_consumes_saved``):
    this Function, which owns them, lets it when the graph is not retained (no later backward
    reads them)."""

    def __init__(self, *, name, args, tensor_args, n_saved, forward_needs, replays, launcher,
                 vjp, double, general, not_a_view, context=None, autocast=False, layout_only=(),
                 shape_only=(), consumes_saved=False):
        self.replays = replays
        self.tensor_args = tuple(tensor_args)
        self.n_saved = n_saved
        self.consumes_saved = consumes_saved
        self.context = context
        self.vjp = vjp
        names = [a.name for a in args]
        kinds = [a.kind for a in args]
        call = "".join(f"{n}, " for n in names)
        saved = "".join(f"_s{k}, " for k in range(n_saved))
        slot = "forward_saved" if n_saved else "forward"
        context_key = ", _context()" if context is not None else ""
        consume_key = ", _consume" if consumes_saved else ""

        # -- the public function: the warm path, else ``general`` ---------------------------
        guards, keys, wants_grad = [], [], []
        for n, kind, a in zip(names, kinds, args):
            tensor_key = _TENSOR_KEY.format(n)
            if kind == "tensor":
                guards.append(_tensor_ok(n))
                keys.append(tensor_key)
                wants_grad.append(f"{n}.requires_grad")
            elif kind == "tensor?":
                guards.append(f"({n} is None or {_tensor_ok(n)})")
                keys.append(f"(_NONE_KEY if {n} is None else {tensor_key})")
                wants_grad.append(f"({n} is not None and {n}.requires_grad)")
            elif kind == "operand":
                guards.append(f"({_tensor_ok(n)} or {n}.__class__ in _NUMBERS)")
                keys.append(f"({tensor_key} if {n}.__class__ in _PLAIN_TENSORS else _value_key({n}))")
                wants_grad.append(f"({n}.__class__ in _PLAIN_TENSORS and {n}.requires_grad)")
            else:  # a value: an object (a Broadcast) keys as None, which no entry has
                key = _VALUE_KEYS.get(kind, "_value_key({0})")
                if a.default is None:  # mostly left out
                    key = "(_NONE_KEY if {0} is None else " + key + ")"
                keys.append(key.format(n))
        state = ("_is_compiling() or _dispatch_modes() or _tracing() or _functorch() "
                 "or _forward_ad._current_level >= 0" + (" or _autocast()" if autocast else ""))
        # a warm call passes the checked values of its non-tensor arguments (``check`` normalizes
        # them: dim=-1 becomes 1); ``general`` gets the call's own
        checked_call = "".join(f"{n}, " if i in self.tensor_args else f"_checked[{i}], "
                               for i, n in enumerate(names))
        # The Function takes the entry, the call's Python values as one tuple (a warm call's are
        # the entry's, checked once), then the tensor arguments: the fewer arguments ``apply``
        # walks, makes edges for and gets gradients back for, the cheaper.
        tensor_names = [names[i] for i in self.tensor_args]
        value_args = [n for i, n in enumerate(names) if i not in self.tensor_args]
        tensor_call = "".join(f"{n}, " for n in tensor_names)
        # the public signature itself binds the arguments: defaults as named constants
        defaults = {f"_default_{n}": a.default for n, a in zip(names, args) if a.default is not REQUIRED}
        params = [f"{n}=_default_{n}" if f"_default_{n}" in defaults else n for n in names]
        lines = [
            f"def {name}({', '.join(params)}):",
            f"    if not ({state}) and {' and '.join(guards)}:",
            f"        _entry = _get(({''.join(k + ', ' for k in keys)}{context_key[2:]}))",
            "        _checked = _entry is not None and _entry.checked",
            "        if _checked and not _domain_checks():",
            f"            if _grad_enabled() and ({' or '.join(wants_grad)}):",
            f"                return _apply(_entry, _entry.python_values, {tensor_call})",
            "            _r = _entry.get('forward')",
            "            if _r.__class__ is _Replay and not _hooked():",
            f"                return _r.run(({checked_call}))",
            f"    return _general({call})",
        ]
        public_source = "\n".join(lines)

        # -- the autograd.Function: forward ------------------------------------------------
        if forward_needs:  # the launcher forms the gradients the call will ask for
            # (needs_input_grad: the entry, the Python values, then each tensor argument)
            slot_lines = [f"    _slot = ({slot!r}, _ctx.needs_input_grad[2:])"]
            launch_kw = "needs=list(_slot[1])"
        else:
            slot_lines, launch_kw = [f"    _slot = {slot!r}"], ""
        # Saved for the backward (version-checked, through saved-tensor hooks): the tensor
        # arguments whose values the VJP reads. The others (``layout_only``: the VJP reads only
        # their layout, fixed by the entry) and the Python values are kept as a tuple in ctx.
        saved_args = [(n, k) for n, k in zip(names, kinds) if k in _TENSOR_KINDS and n not in layout_only]
        kept = [n if k != "operand" else f"({n} if isinstance({n}, _Tensor) else None)" for n, k in saved_args]
        values, value_names = [], []
        for n, k in zip(names, kinds):
            if n in shape_only:  # not the tensor: its memory is the caller's to free
                values.append(f"({n}.shape, {n}.dtype)")
                value_names.append(f"_shape_{n}")
            elif (n, k) not in saved_args:
                values.append(n)
                value_names.append(n)
            elif k == "operand":  # a number operand: in the values (None saved in its place)
                values.append(f"(None if isinstance({n}, _Tensor) else {n})")
                value_names.append(f"_v_{n}")
        kept_values = ("_pv" if values == value_args else  # the call's Python values, as they came
                       f"({''.join(v + ', ' for v in values)})")
        lines = [
            f"def forward(_ctx, _entry, _pv, {tensor_call}):",
            *([f"    {''.join(v + ', ' for v in value_args)}= _pv"] if value_args else []),
            *slot_lines,
            "    _r = _entry.get(_slot)",
            "    if _r.__class__ is _Replay and not _hooked():",
            f"        _out = _r.run(({call}))",
            "    else:",
            f"        _out = _run(_entry, _slot, ({call}), _launcher, {call}{launch_kw})",
            *([f"    _out, {saved}= _out"] if n_saved else []),
            *([f"    _ctx.save_for_backward({''.join(k + ', ' for k in kept)}{saved})"] if kept or n_saved else []),
            *([f"    _ctx.values = {kept_values}"] if values else []),
            # saved-tensor hooks (offloading, checkpointing) may unpack other layouts than the
            # forward's: the backward then keys its replay on every layout, not only grad's
            "    _ctx.entry = _entry if _saved_tensors_hooks(False) is None else None",
            "    return _out if _out._base is None else _not_a_view(_out)",
        ]
        forward_source = "\n".join(lines)

        # -- the autograd.Function: backward -----------------------------------------------
        grads = [f"_g{j}" for j in range(len(self.tensor_args))]
        returned = ["None", "None", *grads]  # the entry, the Python values, the tensors
        lines = [
            "def backward(_ctx, _grad):",
            *([f"    {''.join(n + ', ' for n, _ in saved_args)}{saved}= _ctx.saved_tensors"] if saved_args or n_saved else []),
            *([f"    {''.join(v + ', ' for v in value_names)}= _ctx.values"] if value_names else []),
            *[f"    if {n} is None:\n        {n} = _v_{n}" for n, k in saved_args if k == "operand"],
            *[f"    {n} = _ShapeOnly(*_shape_{n})" for n in names if n in shape_only],
            "    _needs = _ctx.needs_input_grad",
            # create_graph=True, or compiled autograd tracing this backward: the VJP custom op
            "    if _grad_enabled() or _is_compiling():",
            *[f"        {n} = {n}.like(_grad)" for n in names if n in shape_only],
            f"        _grads = _double(({call}), ({saved}), _grad, _needs)",
            "    else:",
            "        _entry = _ctx.entry",
            # the VJP may write over the saved statistics when no later backward reads them
            *(["        _consume = not _keep_graph()"] if consumes_saved else []),
            "        _key = _entry is not None and "
            f"(_grad.shape, _grad.stride(), _grad.dtype, _grad.data_ptr() & 15, _needs{context_key}{consume_key})",
            "        _r = _key and _entry.get(_key)",
            "        if _r.__class__ is _Replay and not _hooked():",
            f"            _grads = _r.run(({call}{saved}_grad))",
            "        else:",
            f"            _grads = _vjp(_entry, _key, ({call}), ({saved}), _grad, _needs{consume_key})",
            f"    {''.join(g + ', ' for g in grads)}= _grads",
            f"    return {', '.join(returned)}",
        ]
        backward_source = "\n".join(lines)

        names_space = {
            "_PLAIN_TENSORS": _PLAIN_TENSORS, "_NUMBERS": _NUMBERS, "_Tensor": torch.Tensor,
            "_NONE_KEY": replay.value_key(None), "_value_key": replay.value_key, "_Replay": replay.Replay,
            "_sequence_key": replay.sequence_key,
            "_is_compiling": torch.compiler.is_compiling, "_dispatch_modes": torch._C._len_torch_dispatch_stack,
            "_tracing": torch._C._get_tracing_state, "_functorch": torch._C._are_functorch_transforms_active,
            "_forward_ad": _forward_ad, "_autocast": torch._C._is_any_autocast_enabled,
            "_grad_enabled": torch.is_grad_enabled, "_domain_checks": runtime.domain_checks_enabled,
            "_hooked": runtime.launch_hooked, "_get": replays.get, "_run": replay.run, "_context": context,
            "_general": general, "_launcher": launcher, "_double": double, "_vjp": self._vjp,
            "_saved_tensors_hooks": torch._C._autograd._top_saved_tensors_default_hooks,
            "_not_a_view": not_a_view, "_ShapeOnly": ShapeOnly, "_keep_graph": torch._C._autograd._get_current_graph_task_keep_graph,
            **defaults,
        }
        self.source = "\n\n".join([public_source, forward_source, backward_source])
        exec(compile(self.source, f"<triton_ops eager {name}>", "exec"), names_space)
        # Named per op (its backward node reads "<name>_eagerBackward" in a graph).
        self.function = type(f"{name}_eager", (torch.autograd.Function,),
                             {"forward": staticmethod(names_space["forward"]),
                              "backward": staticmethod(names_space["backward"])})
        # The engine calls the backward node's ``apply``, whose base (``BackwardCFunction``)
        # only looks up which of ``backward``/``vjp`` the Function defines and calls it: this
        # Function defines ``backward``, so its node calls it directly (one frame less, ~1 µs).
        self.function._backward_cls.apply = names_space["backward"]
        # ``Function.apply`` without its Python wrapper (about 2 µs), which binds default
        # arguments (there are none) and unwraps functorch wrappers (the warm path and
        # ``spec.eager_route`` admit no functorch transform): the C++ ``apply`` it ends in.
        self.apply = torch._C._FunctionBase.__dict__["apply"].__get__(None, self.function)
        names_space["_apply"] = self.apply
        self.public = names_space[name]
        self._value_positions = tuple(i for i in range(len(names)) if i not in self.tensor_args)

    def apply_values(self, entry, values):
        """The Function on a call's checked values (the general code's way in)."""
        return self.apply(entry, tuple(values[i] for i in self._value_positions),
                          *(values[i] for i in self.tensor_args))

    def _vjp(self, entry, key, values, saved, grad, needs, consume=False):
        """The VJP launcher under ``replay.run``: recorded on its first call per slot. ``entry``
        None (saved-tensor hooks were active): keyed on every layout of the call."""
        wanted = list(needs[2:])  # needs[0], [1]: the Entry and the Python values
        inputs = (*values, *saved, grad)
        if entry is None:
            layouts = replay.layout_key(inputs)
            entry = layouts and self.replays.entry(("vjp", layouts))
            key = (tuple(wanted), self.context() if self.context is not None else None, consume)
        kw = {"saved": list(saved)} if self.n_saved else {}
        if self.consumes_saved:  # this Function owns its saved statistics, read by no later backward
            kw["consume_saved"] = consume
        return replay.run(entry, key, inputs, self.vjp, *values, grad, needs=wanted, **kw)
