"""``torch.nn`` drop-ins running on triton_ops kernels.

Each module subclasses its ``torch.nn`` counterpart: same constructor arguments, parameter
names, shapes, initialization and ``state_dict`` keys, so ``load_state_dict`` works both ways;
only ``forward`` changes. ``replace(model)`` swaps, in place, every module whose math triton_ops
implements exactly.
"""
from __future__ import annotations

from torch import fx as _fx
from torch import nn as _nn

import triton_ops as _ops

__all__ = ["Linear", "LayerNorm", "GELU", "ELU", "LeakyReLU", "MSELoss", "L1Loss", "HuberLoss", "CrossEntropyLoss",
           "PoissonNLLLoss", "BCELoss", "RMSNorm", "SiLU", "ReLU", "Softmax", "Embedding", "replace",
           "fuse_lm_head_loss"]


class Linear(_nn.Linear):
    """``torch.nn.Linear`` with an optional activation fused into the GEMM epilogue (any
    registered unary op by name: "gelu", "elu", "leaky_relu", ...)."""

    def __init__(self, in_features, out_features, bias=True, activation=None, device=None, dtype=None):
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.activation = activation

    def forward(self, x):
        return _ops.linear(x, self.weight, self.bias, self.activation)

    def extra_repr(self):
        return super().extra_repr() + (f", activation={self.activation!r}" if self.activation else "")


class LayerNorm(_nn.LayerNorm):
    def forward(self, x):
        return _ops.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


class GELU(_nn.GELU):
    """``torch.nn.GELU`` in both approximations: "tanh" (the default here, kept from the first
    release) runs ``triton_ops.gelu``, "none" (exact erf, torch's default) ``triton_ops.gelu_erf``."""

    def __init__(self, approximate="tanh"):
        super().__init__(approximate=approximate)

    @property
    def kernel(self):
        """The registry op this module runs (also the name ``fuse_activations`` fuses)."""
        return "gelu" if self.approximate == "tanh" else "gelu_erf"

    def forward(self, x):
        return _ops.registry[self.kernel].fn(x)


class ELU(_nn.ELU):
    def forward(self, x):
        return _ops.elu(x, self.alpha)


class LeakyReLU(_nn.LeakyReLU):
    def forward(self, x):
        return _ops.leaky_relu(x, self.negative_slope)


class MSELoss(_nn.MSELoss):
    def forward(self, input, target):
        return _ops.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_nn.L1Loss):
    def forward(self, input, target):
        return _ops.mae_loss(input, target, reduction=self.reduction)


class HuberLoss(_nn.HuberLoss):
    def forward(self, input, target):
        return _ops.huber_loss(input, target, delta=self.delta, reduction=self.reduction)


class PoissonNLLLoss(_nn.PoissonNLLLoss):
    """``log_input=True, full=False`` only (the form SPEC's poisson_loss computes)."""

    def __init__(self, log_input=True, full=False, eps=1e-8, reduction="mean"):
        if not log_input or full:
            raise ValueError("triton_ops.nn.PoissonNLLLoss: only log_input=True, full=False is implemented")
        super().__init__(log_input=log_input, full=full, eps=eps, reduction=reduction)

    def forward(self, log_input, target):
        return _ops.poisson_loss(log_input, target, reduction=self.reduction)


class BCELoss(_nn.BCELoss):
    """Binary cross-entropy with SPEC's clamp of p to [eps, 1 - eps] (PyTorch instead clamps the
    log at -100): not an exact drop-in, so ``replace`` leaves ``torch.nn.BCELoss`` alone."""

    def __init__(self, weight=None, reduction="mean", eps=1e-6):
        if weight is not None:
            raise ValueError("triton_ops.nn.BCELoss: per-element weights are not implemented")
        super().__init__(reduction=reduction)
        self.eps = eps

    def forward(self, input, target):
        return _ops.binary_cross_entropy(input, target, eps=self.eps, reduction=self.reduction)


class CrossEntropyLoss(_nn.CrossEntropyLoss):
    """``torch.nn.CrossEntropyLoss``: class axis 1 (0 for an unbatched input), class indices or
    probabilities, ``ignore_index`` and ``label_smoothing``; per-class ``weight`` is not
    implemented."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                 label_smoothing=0.0):
        if weight is not None:
            raise ValueError("triton_ops.nn.CrossEntropyLoss: per-class weights are not implemented")
        super().__init__(weight=None, size_average=size_average, ignore_index=ignore_index, reduce=reduce,
                         reduction=reduction, label_smoothing=label_smoothing)

    def forward(self, input, target):
        return _ops.cross_entropy_logits(input, target, dim=1 if input.dim() > 1 else 0,
                                         ignore_index=self.ignore_index, label_smoothing=self.label_smoothing,
                                         reduction=self.reduction)


class RMSNorm(_nn.RMSNorm):
    def forward(self, x):
        return _ops.rms_norm(x, self.normalized_shape, self.weight, self.eps)


class SiLU(_nn.SiLU):
    def forward(self, x):
        return _ops.silu(x)


class ReLU(_nn.ReLU):
    """Out of place even when built with ``inplace=True`` (the values are the same)."""

    def forward(self, x):
        return _ops.relu(x)


class Softmax(_nn.Softmax):
    def forward(self, x):
        # dim=None: torch's legacy choice (0 for 0-, 1- and 3-d inputs, else 1)
        dim = self.dim if self.dim is not None else (0 if x.dim() in (0, 1, 3) else 1)
        return _ops.softmax(x, dim)


class Embedding(_nn.Embedding):
    """``torch.nn.Embedding`` without ``padding_idx``, ``max_norm``, ``scale_grad_by_freq`` and
    sparse gradients (``replace`` leaves modules using them alone)."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, sparse=False, _weight=None, _freeze=False, device=None, dtype=None):
        if padding_idx is not None or max_norm is not None or scale_grad_by_freq or sparse:
            raise ValueError("triton_ops.nn.Embedding: padding_idx, max_norm, scale_grad_by_freq and sparse are "
                             "not implemented")
        super().__init__(num_embeddings, embedding_dim, _weight=_weight, _freeze=_freeze, device=device, dtype=dtype)

    def forward(self, indices):
        return _ops.embedding(indices, self.weight)


# --------------------------------------------------------------------------------------------
# replace(model)


# torch.nn class -> (its triton_ops twin, the settings under which the twin's math is exactly the
# module's; None: all)
_TWINS = {
    _nn.Linear: (Linear, None),
    _nn.LayerNorm: (LayerNorm, None),
    _nn.GELU: (GELU, lambda m: m.approximate in ("tanh", "none")),
    _nn.ELU: (ELU, None),
    _nn.LeakyReLU: (LeakyReLU, None),
    _nn.MSELoss: (MSELoss, None),
    _nn.L1Loss: (L1Loss, None),
    _nn.HuberLoss: (HuberLoss, None),
    _nn.CrossEntropyLoss: (CrossEntropyLoss, lambda m: m.weight is None),
    _nn.PoissonNLLLoss: (PoissonNLLLoss, lambda m: m.log_input and not m.full),
    _nn.RMSNorm: (RMSNorm, None),
    _nn.SiLU: (SiLU, None),
    _nn.ReLU: (ReLU, None),
    _nn.Softmax: (Softmax, None),
    _nn.Embedding: (Embedding, lambda m: m.padding_idx is None and m.max_norm is None and not m.scale_grad_by_freq
                    and not m.sparse),
}
_SUBCLASS_TWINS: dict = {}


def _exact_twin(module):
    """The triton_ops class computing exactly ``module``'s math, or None. A subclass of a torch
    class qualifies when it keeps the parent's ``forward``: it becomes a class deriving from the
    triton_ops twin and from itself, so its own other methods and attributes stay."""
    t = type(module)
    if t.__module__ == __name__:
        return None  # already ours
    for base, (twin, exact) in _TWINS.items():
        if isinstance(module, base) and t.forward is base.forward:
            if exact is not None and not exact(module):
                return None
            if t is base:
                return twin
            if (t, twin) not in _SUBCLASS_TWINS:
                _SUBCLASS_TWINS[(t, twin)] = type(t.__name__, (twin, t), {"__module__": __name__,
                                                                          "__qualname__": t.__qualname__})
            return _SUBCLASS_TWINS[(t, twin)]
    return None


def _swap(module, cls, **attrs):
    """A ``cls`` twin of ``module``: its parameters, buffers, submodules and hooks are the very
    same objects (devices, dtypes, optimizer references kept), held in containers of its own,
    so that changing one module's attributes or registrations never changes the other."""
    new = cls.__new__(cls)
    new.__dict__ = {k: (v.copy() if isinstance(v, dict) else v) for k, v in module.__dict__.items()}
    if issubclass(cls, Linear):
        new.activation = None
    new.__dict__.update(attrs)
    return new


def _twin_name(cls):
    return next(c.__name__ for c in cls.__mro__ if c.__module__ == __name__ and c.__name__ in __all__)


def replace(model: _nn.Module, verbose: bool = True) -> _nn.Module:
    """Swap, in place, every submodule (and ``model`` itself) whose math triton_ops implements
    exactly. Returns the model; the swaps are listed in ``model.triton_ops_replaced`` as
    (qualified name, from, to) and printed when ``verbose``."""
    swapped = []
    twins: dict = {}  # id(torch module) -> its twin: a module used twice gets one twin, used twice

    def visit(parent, prefix):
        for name, child in list(parent._modules.items()):
            if child is None:
                continue
            qual = f"{prefix}.{name}" if prefix else name
            if id(child) in twins:
                parent._modules[name] = twins[id(child)]
                continue
            cls = _exact_twin(child)
            if cls is not None:
                twins[id(child)] = parent._modules[name] = _swap(child, cls)
                swapped.append((qual, type(child).__name__, f"triton_ops.nn.{_twin_name(cls)}"))
            else:
                twins[id(child)] = child
                visit(child, qual)

    root_cls = _exact_twin(model)
    if root_cls is not None:
        swapped.append(("", type(model).__name__, f"triton_ops.nn.{_twin_name(root_cls)}"))
        model = _swap(model, root_cls)
    else:
        visit(model, "")
    object.__setattr__(model, "triton_ops_replaced", swapped)
    if verbose:
        kinds = {}
        for _, old, _new in swapped:
            kinds[old] = kinds.get(old, 0) + 1
        summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "nothing"
        print(f"triton_ops.nn.replace: swapped {len(swapped)} module(s): {summary}")
    return model


def _epilogue(act):
    """The registry unary op a triton_ops ``Linear`` can fuse for activation module ``act``, or
    None (only the parameter values the fused epilogue uses: its op's defaults)."""
    if isinstance(act, GELU):
        return act.kernel
    if isinstance(act, ELU) and act.alpha == 1.0:
        return "elu"
    if isinstance(act, LeakyReLU) and act.negative_slope == 0.01:
        return "leaky_relu"
    if isinstance(act, (SiLU, ReLU)):
        return type(act).__name__.lower()
    return None


def fuse_activations(model: _nn.Module) -> _nn.Module:
    """Fold a triton_ops activation module (``GELU`` either approximation, ``ELU``,
    ``LeakyReLU``, ``SiLU``, ``ReLU``) applied straight to a triton_ops ``Linear``'s output into
    the Linear's epilogue; the activation module becomes ``nn.Identity``. The pairs are found in
    ``nn.Sequential`` containers and, in any other module, by tracing its ``forward`` with
    ``torch.fx`` (children as leaves): a pair qualifies when the Linear's output feeds only the
    activation and each of the two modules is called once. Modules fx cannot trace
    (data-dependent control flow) are left as they are. The math is unchanged; one kernel and one
    tensor less per pair. The fused Linear is a new module sharing the parameters: a Linear used
    elsewhere too (another container, another model) keeps computing what it computed."""
    for module in list(model.modules()):
        pairs = _sequential_pairs(module) if isinstance(module, _nn.Sequential) else _traced_pairs(module)
        for lin_name, act_name in pairs:
            lin, act = module._modules[lin_name], module._modules[act_name]
            kind = _epilogue(act)
            if isinstance(lin, Linear) and lin.activation is None and kind:
                module._modules[lin_name] = _swap(lin, type(lin), activation=kind)
                module._modules[act_name] = _nn.Identity()
    return model


def _sequential_pairs(module):
    names = list(module._modules)
    return list(zip(names, names[1:]))


class _ChildrenAsLeaves(_fx.Tracer):
    def is_leaf_module(self, m, qualname):
        return True


def _traced_pairs(module):
    """(Linear child, activation child) pairs of ``module.forward``'s fx graph: the activation
    is the only user of the Linear's output, and each child is called exactly once."""
    if not module._modules:
        return []
    try:
        graph = _ChildrenAsLeaves().trace(module)
    except Exception:  # noqa: BLE001  (fx's TraceError, or whatever the forward raises on proxies)
        return []
    calls = [n for n in graph.nodes if n.op == "call_module"]
    count = {}
    for n in calls:
        count[n.target] = count.get(n.target, 0) + 1
    pairs = []
    for n in calls:
        users = list(n.users)
        if len(users) == 1 and users[0].op == "call_module" and users[0].args == (n,) and not users[0].kwargs \
                and count[n.target] == 1 and count[users[0].target] == 1 \
                and n.target in module._modules and users[0].target in module._modules:
            pairs.append((n.target, users[0].target))
    return pairs


def fuse_lm_head_loss(model: _nn.Module, head: str = "lm_head", hidden: str = "hidden_states") -> _nn.Module:
    """Put a causal LM's head and loss on ``triton_ops.linear_cross_entropy`` (what Liger-Kernel
    does to a Hugging Face model's forward), in place.

    ``model`` follows the nanoGPT convention ``forward(idx, targets=None) -> (logits, loss)``,
    with ``getattr(model, hidden)(idx)`` the hidden states the head reads and ``getattr(model,
    head)`` an ``nn.Linear`` (its weight may be tied to the embedding). Afterwards, a call with
    targets returns ``(None, loss)``: the loss comes straight from the hidden states and the head's
    weight, and the [tokens, vocab] logits never exist. Without targets, the original forward
    (logits for generation). The targets' ``ignore_index`` is -100, as ``F.cross_entropy``. Under
    FSDP, keep the head in the root's (or the hidden states' module's) shard group: its weight is
    read outside the head's own forward."""
    original = model.forward
    lm_head = getattr(model, head)
    hidden_states = getattr(model, hidden)

    def forward(idx, targets=None):
        if targets is None:
            return original(idx)
        loss = _ops.linear_cross_entropy(hidden_states(idx), lm_head.weight, targets, lm_head.bias)
        return None, loss

    model.forward = forward
    return model
