"""Edges the value tests do not pin: output dtypes of every op (mixed-dtype promotion included),
gradients at exact kinks (the SPEC's values, not a finite difference), the int64 switch at
2^31 - 1 / 2^31, argument checks of optional tensors, the tuning store's validation, and the
``nn`` drop-ins' own arguments."""
from __future__ import annotations

import json
import warnings

import pytest
import torch
import torch.nn.functional as F

import triton_ops
from triton_ops import nn as tnn
from triton_ops import runtime, tune
from helpers import DEVICE, DTYPES, TOL, assert_close, cast_keep_layout, reference_grads

F64 = torch.float64
OPS = sorted(triton_ops.registry)


def _floating(args, spec):
    return [i for i in spec.tensor_args if isinstance(args[i], torch.Tensor) and args[i].is_floating_point()]


# ------------------------------------------------------------------------------------------------
# dtypes: outputs in the input dtype (result_type for binary ops and losses), each gradient in
# its own input's dtype


@pytest.mark.parametrize("name", OPS)
def test_output_and_gradient_dtypes(name):
    spec = triton_ops.registry[name]
    for dtype in DTYPES:
        args = list(spec.bind(*spec.sample((3, 8), dtype, DEVICE, torch.Generator().manual_seed(0))))
        idx = _floating(args, spec)
        for i in idx:
            args[i] = args[i].detach().requires_grad_()
        out = spec.fn(*args)
        assert out.dtype == dtype, f"{name}: {dtype} input gave a {out.dtype} output"
        grads = torch.autograd.grad(out, [args[i] for i in idx], torch.ones_like(out))
        for i, g in zip(idx, grads):
            assert g.dtype == args[i].dtype and g.shape == args[i].shape, f"{name} grad of {spec.args[i].name}"


MIXED = [(torch.float16, torch.float32), (torch.bfloat16, torch.float16), (torch.float32, torch.float64),
         (torch.float64, torch.bfloat16)]
PAIRS = sorted(n for n, s in triton_ops.registry.items() if s.family in ("binary", "loss")
               and n != "cross_entropy_logits")


@pytest.mark.parametrize("dtypes", MIXED, ids=lambda d: f"{d[0]}-{d[1]}".replace("torch.", ""))
@pytest.mark.parametrize("name", PAIRS)
def test_mixed_dtypes_follow_result_type(name, dtypes):
    spec = triton_ops.registry[name]
    gen = torch.Generator().manual_seed(1)
    args = list(spec.bind(*spec.sample((4, 6), F64, DEVICE, gen)))
    for i, dtype in zip(_floating(args, spec), dtypes):
        args[i] = cast_keep_layout(args[i], dtype).requires_grad_()
    expected = torch.result_type(*[args[i] for i in _floating(args, spec)])
    for reduction in (("mean", "none") if spec.family == "loss" else (None,)):
        if reduction:
            args[[a.name for a in spec.args].index("reduction")] = reduction
        out = spec.fn(*args)
        assert out.dtype == expected, f"{name} {dtypes} {reduction}: {out.dtype}, expected {expected}"
        g = torch.ones_like(out)
        idx = _floating(args, spec)
        ref, ref_grads = reference_grads(spec.reference, args, g, idx)
        assert_close(out, ref, expected, f"{name} {dtypes} {reduction}", scale=4.0)
        for i, gr, rg in zip(idx, torch.autograd.grad(out, [args[i] for i in idx], g), ref_grads):
            assert gr.dtype == args[i].dtype
            assert_close(gr, rg, args[i].dtype if args[i].dtype != F64 else expected, f"{name} grad {i}", scale=4.0)


def test_cross_entropy_logits_mixed_probability_target():
    z = torch.randn(5, 7, dtype=torch.float16, device=DEVICE)
    p = torch.softmax(torch.randn(5, 7, dtype=torch.float32, device=DEVICE), -1)
    assert triton_ops.cross_entropy_logits(z, p).dtype == torch.float32
    assert triton_ops.cross_entropy_logits(z, p, reduction="none").dtype == torch.float32
    assert triton_ops.cross_entropy_logits(z, torch.tensor([0, 1, 2, 3, 4], device=DEVICE)).dtype == torch.float16


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_layers_keep_half_dtypes(dtype):
    x = torch.randn(4, 24, device=DEVICE).to(dtype)
    w, b = torch.randn(24, device=DEVICE).to(dtype), torch.randn(24, device=DEVICE).to(dtype)
    assert triton_ops.layer_norm(x, [24], w, b).dtype == dtype
    assert triton_ops.layer_norm(x, [24]).dtype == dtype
    lin = torch.randn(10, 24, device=DEVICE).to(dtype)
    assert triton_ops.linear(x, lin, lin[:, 0].clone(), "gelu").dtype == dtype
    for module in (tnn.LayerNorm(24), tnn.Linear(24, 5, activation="elu")):
        assert module.to(DEVICE, dtype)(x).dtype == dtype


# ------------------------------------------------------------------------------------------------
# exact kinks (SPEC sections 1 and 3)


def _value_and_grad(fn, x, *rest):
    x = torch.tensor(x, dtype=F64, device=DEVICE, requires_grad=True)
    rest = [torch.tensor(r, dtype=F64, device=DEVICE, requires_grad=True) if isinstance(r, list) else r for r in rest]
    out = fn(x, *rest)
    leaves = [x] + [r for r in rest if isinstance(r, torch.Tensor)]
    return out.detach().cpu().tolist(), [g.cpu().tolist() for g in torch.autograd.grad(out.sum(), leaves)]


def test_unary_kinks():
    # parameters exact in float32 (they reach the kernel as float32 hi + lo): exact results
    assert _value_and_grad(triton_ops.leaky_relu, [0.0, -0.0, 1e-300, -4.0], 0.25) == (
        [0.0, 0.0, 1e-300, -1.0], [[0.25, 0.25, 1.0, 0.25]])
    assert _value_and_grad(triton_ops.elu, [0.0, 1e-300], 0.5) == ([0.0, 1e-300], [[0.5, 1.0]])
    assert _value_and_grad(triton_ops.sqrt, [0.0, -0.0, -2.0]) == ([0.0, 0.0, 0.0], [[0.0, 0.0, 0.0]])
    assert _value_and_grad(triton_ops.smooth_abs, [0.0], 0.25) == ([0.5], [[0.0]])


def test_fused_activation_kink_in_linear():
    # pre-activation exactly 0: the dz pass uses act'(0) (slope, alpha)
    x = torch.zeros(3, 4, dtype=F64, device=DEVICE, requires_grad=True)
    w = torch.ones(2, 4, dtype=F64, device=DEVICE, requires_grad=True)
    b = torch.zeros(2, dtype=F64, device=DEVICE, requires_grad=True)
    for activation, slope in (("leaky_relu", 0.01), ("elu", 1.0)):  # the defaults
        y = triton_ops.linear(x, w, b, activation)
        dx, dw, db = torch.autograd.grad(y, (x, w, b), torch.ones_like(y))
        assert torch.equal(y, torch.zeros_like(y))
        assert_close(db, torch.full_like(db, 3 * slope), F64, f"{activation} db")
        assert_close(dx, torch.full_like(dx, 2 * slope), F64, f"{activation} dx")
        assert torch.equal(dw, torch.zeros_like(dw))


def test_loss_kinks():
    none = "none"
    # mae: sign(0) = 0 for x and t
    assert _value_and_grad(lambda x, t: triton_ops.mae_loss(x, t, reduction=none), [1.5, -2.0], [1.5, -2.0]) == (
        [0.0, 0.0], [[0.0, 0.0], [0.0, 0.0]])
    # huber at |d| = delta (= 0.5): 0.5 d^2 = delta (|d| - delta / 2), gradient d = delta sign(d);
    # past it the linear branch delta (|d| - delta / 2)
    value, grads = _value_and_grad(lambda x, t: triton_ops.huber_loss(x, t, 0.5, none), [0.5, -0.5, 2.5, -1.5],
                                   [0.0, 0.0, 0.5, 0.5])
    assert value == [0.125, 0.125, 0.875, 0.875] and grads == [[0.5, -0.5, 0.5, -0.5], [-0.5, 0.5, -0.5, 0.5]]
    # hinge at 1 - t x = 0: loss 0, gradients 0 (SPEC: -t only where 1 - t x > 0)
    value, grads = _value_and_grad(lambda x, t: triton_ops.hinge_loss(x, t, none), [1.0, -1.0, 0.5], [1.0, -1.0, 1.0])
    assert value == [0.0, 0.0, 0.5] and grads == [[0.0, 0.0, -1.0], [0.0, 0.0, -0.5]]
    # mean and sum through the same kinks
    x = torch.tensor([1.0, 2.0, 3.0], dtype=F64, device=DEVICE, requires_grad=True)
    (g,) = torch.autograd.grad(triton_ops.mae_loss(x, x.detach().clone()), x)
    assert g.tolist() == [0.0, 0.0, 0.0]


# ------------------------------------------------------------------------------------------------
# the int64 switch: offsets up to 2^31 - 1 stay int32, 2^31 needs int64 (decided on shapes only)


def meta(*shape, stride=None):
    return torch.empty(shape, device="meta") if stride is None else torch.empty_strided(shape, stride, device="meta")


def test_int64_threshold():
    assert not runtime.needs_int64(2**31 - 1) and runtime.needs_int64(2**31)
    assert runtime.max_offset((2**31,), (1,)) == 2**31 - 1
    assert runtime.max_offset((3, 0, 5), (0, 7, 1)) == 4
    assert not runtime.tensors_need_int64(meta(2**31), None)
    assert runtime.tensors_need_int64(meta(2**31 + 1))
    assert not runtime.tensors_need_int64(meta(2**30, stride=(2,)))     # last offset 2^31 - 2
    assert runtime.tensors_need_int64(meta(2**30 + 1, stride=(2,)))     # last offset 2^31
    assert runtime.tensors_need_int64(meta(2, 3), extra=(2**31,))


def test_int64_switch_in_the_pointwise_planners():
    from triton_ops.bwd.pointwise import pointwise_vjp_kernel
    from triton_ops.fwd.pointwise import pointwise_fwd_kernel
    from triton_ops.launchers.pointwise import _forward_plan, _vjp_plan, describe
    from triton_ops.scalar import identity, one_xy

    absent, cpu = describe(None, 1), torch.device("cpu")
    for n, wide in ((2**31, False), (2**31 + 1, True)):
        x = torch.empty(n, dtype=torch.float16, device="meta")
        d = describe(x, n)
        _, fwd = _forward_plan(pointwise_fwd_kernel, identity, 1, False, (n,), (1,), torch.float16, d, absent, cpu)
        assert fwd.fixed["INDEX_64"] is wide, n
        bwd = _vjp_plan(pointwise_vjp_kernel, one_xy, None, 1, False, False, (n,), d, d, absent, (n,), (n,), (1,),
                        None, cpu)[0]
        assert bwd.fixed["INDEX_64"] is wide, n


# ------------------------------------------------------------------------------------------------
# plan memos: a launcher's memo key holds everything its plan depends on


def test_pointwise_memo_keys_on_the_output_layout():
    # same operand, same output shape, two output layouts: the second call must not reuse the
    # first call's plan (it would write row-major into a column-major output)
    from triton_ops.launchers.pointwise import pointwise
    from triton_ops.scalar import identity

    x = torch.arange(12.0, dtype=F64, device=DEVICE).reshape(3, 4)
    rows = pointwise(identity, torch.empty(3, 4, dtype=F64, device=DEVICE), x)
    cols = pointwise(identity, torch.empty(4, 3, dtype=F64, device=DEVICE).t(), x)
    assert torch.equal(rows, x) and torch.equal(cols, x)


# ------------------------------------------------------------------------------------------------
# optional tensors go through the device and dtype checks too


def test_linear_bias_checks():
    x, w = torch.randn(3, 4, device=DEVICE), torch.randn(5, 4, device=DEVICE)
    with pytest.raises(ValueError, match="triton_ops.linear: bias is on meta"):
        triton_ops.linear(x, w, torch.empty(5, device="meta"))
    with pytest.raises(TypeError, match="triton_ops.linear: all tensors must have one dtype.*bias=torch.float64"):
        triton_ops.linear(x, w, torch.zeros(5, dtype=F64, device=DEVICE))
    with pytest.raises(TypeError, match="triton_ops.linear: bias must be a floating tensor"):
        triton_ops.linear(x, w, torch.zeros(5, dtype=torch.int32, device=DEVICE))
    with pytest.raises(ValueError, match="triton_ops.linear: bias shape"):
        triton_ops.linear(x, w, torch.zeros(4, device=DEVICE))


@pytest.mark.parametrize("which", ["weight", "bias"])
def test_layer_norm_affine_checks(which):
    x = torch.randn(3, 4, device=DEVICE)
    good = torch.ones(4, device=DEVICE)

    def call(t):
        return triton_ops.layer_norm(x, [4], **{which: t}, **({"weight": good} if which == "bias" else {}))

    with pytest.raises(ValueError, match=f"triton_ops.layer_norm: {which} is on meta"):
        call(torch.empty(4, device="meta"))
    with pytest.raises(TypeError, match=f"triton_ops.layer_norm: {which} must be a floating tensor"):
        call(torch.ones(4, dtype=torch.int64, device=DEVICE))
    with pytest.raises(ValueError, match=f"triton_ops.layer_norm: {which} shape"):
        call(torch.ones(5, device=DEVICE))


# ------------------------------------------------------------------------------------------------
# the tuning store: malformed entries ignored with a warning (README), lookups by shape bucket


GOOD = dict(BLOCK_M=16, BLOCK_N=32, BLOCK_K=16, GROUP_M=8, num_warps=4, num_stages=1)


@pytest.mark.parametrize("bad", [dict(BLOCK_M=0), dict(BLOCK_M=-16), dict(BLOCK_M=48), dict(BLOCK_K=True),
                                 dict(num_warps=3), dict(BLOCK_N=32.0)], ids=str)
def test_store_rejects_malformed_gemm_configs(store, bad):
    key = tune.store_key("gemm", "forward", torch.float32, (64, 64, 64))
    store.write_text(json.dumps({"version": tune.STORE_VERSION, "configs": {tune.device_name(): {
        key: {**GOOD, **bad}, tune.store_key("gemm", "forward", torch.float64, (64, 64, 64)): GOOD}}}))
    with pytest.warns(UserWarning, match="triton_ops.tune: ignoring malformed entry"):
        assert tune.lookup("gemm", torch.float32, (64, 64, 64)) is None
    assert tune.lookup("gemm", torch.float64, (64, 64, 64)) == GOOD  # the well-formed entry is kept
    a = torch.randn(64, 64, device=DEVICE)
    torch.testing.assert_close(triton_ops.matmul(a, a, "ieee"), a @ a, rtol=1e-4, atol=1e-4)


def test_store_lookup_by_bucket_and_save_refreshes(store):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tune.lookup("gemm", torch.float32, (48, 40, 40)) is None  # read (and cached): empty
    tune.save({tune.store_key("gemm", "forward", torch.float32, (64, 64, 64)): GOOD})
    assert tune.store_key("gemm", "forward", torch.float32, (33, 64, 40)) == "gemm|forward|float32|64x64x64"
    assert tune.lookup("gemm", torch.float32, (48, 40, 40)) == GOOD  # same bucket, seen after save
    assert tune.lookup("gemm", torch.float32, (48, 40, 65)) is None
    from triton_ops.launchers.matmul import gemm_config

    assert gemm_config(48, 40, 40, torch.float32) == GOOD
    a, b = torch.randn(48, 40, device=DEVICE), torch.randn(40, 40, device=DEVICE)
    torch.testing.assert_close(triton_ops.matmul(a, b, "ieee"), a @ b, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------------------------------------
# nn drop-ins pass their own arguments through


def test_nn_modules_pass_their_arguments():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(6, 5, 4, generator=gen, dtype=F64).to(DEVICE)
    t = torch.randn(6, 5, 4, generator=gen, dtype=F64).to(DEVICE)
    pairs = [(tnn.LayerNorm(4, eps=0.5), torch.nn.LayerNorm(4, eps=0.5)), (tnn.ELU(0.3), torch.nn.ELU(0.3)),
             (tnn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2))]
    for ours, theirs in pairs:
        ours, theirs = ours.to(DEVICE, F64), theirs.to(DEVICE, F64)
        assert_close(ours(x), theirs(x), F64, type(ours).__name__)
    for reduction in ("sum", "none"):
        losses = [(tnn.HuberLoss(reduction, delta=0.4), torch.nn.HuberLoss(reduction, delta=0.4)),
                  (tnn.MSELoss(reduction=reduction), torch.nn.MSELoss(reduction=reduction)),
                  (tnn.L1Loss(reduction=reduction), torch.nn.L1Loss(reduction=reduction))]
        for ours, theirs in losses:
            assert_close(ours(x, t), theirs(x, t), F64, f"{type(ours).__name__} {reduction}")
    # classes on axis 1 of a [N, C, d] input
    target = torch.randint(0, 5, (6, 4), generator=gen).to(DEVICE)
    ours = tnn.CrossEntropyLoss(label_smoothing=0.1, reduction="sum")(x, target)
    assert_close(ours, torch.nn.CrossEntropyLoss(label_smoothing=0.1, reduction="sum")(x, target), F64, "CE [N, C, d]")


def test_fuse_activations_keeps_non_default_parameters_apart():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ELU(0.3), torch.nn.Linear(6, 6), torch.nn.ELU(),
                                torch.nn.Linear(6, 3), torch.nn.LeakyReLU(0.2)).to(DEVICE, F64)
    x = torch.randn(5, 4, dtype=F64, device=DEVICE)
    expected = model(x)
    fused = tnn.fuse_activations(tnn.replace(model, verbose=False))
    assert [getattr(m, "activation", None) for m in fused[::2]] == [None, "elu", None]
    assert_close(fused(x), expected, F64, "fused")
