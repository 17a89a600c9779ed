"""Issue 14, classes 5, 6 and 7: threads, the tuning store's schema, and the edges of shapes
and arguments."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

import triton_ops
from helpers import DEVICE
from triton_ops import autotune, runtime, tune

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
F = torch.nn.functional


# --------------------------------------------------------------------------------------------
# class 5: threads


def test_four_threads_calling_ops_at_once():
    # a tiny switch interval makes the threads interleave inside launches (without the launch
    # lock the interpreter fails here every time: "Did you forget to add @triton.jit")
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    errors, results = [], {}

    def work(k):
        try:
            g = torch.Generator().manual_seed(k)
            x = torch.randn(5, 7, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
            for _ in range(3):
                y = triton_ops.layer_norm(triton_ops.gelu(triton_ops.mul(x, 2.0)), [7])
                (dx,) = torch.autograd.grad(y, x, torch.ones_like(y))
            results[k] = (x.detach(), y.detach(), dx)
        except Exception as exc:  # noqa: BLE001  (reported below)
            errors.append(repr(exc))

    try:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors[:2]
    for k, (x, y, dx) in results.items():
        xr = x.cpu().requires_grad_()
        yr = F.layer_norm(F.gelu(xr * 2.0, approximate="tanh"), [7])
        torch.testing.assert_close(y.cpu(), yr.detach())
        torch.testing.assert_close(dx.cpu(), torch.autograd.grad(yr, xr, torch.ones_like(yr))[0])


def test_domain_checks_are_local_to_a_thread():
    x = torch.tensor([0.0, 1.0], device=DEVICE)
    seen = {}

    def other():
        seen["other"] = triton_ops.runtime.domain_checks_enabled()
        seen["log"] = triton_ops.log(x).tolist()  # no DomainError here

    with triton_ops.domain_checks():
        t = threading.Thread(target=other)
        t.start()
        t.join()
        with pytest.raises(triton_ops.DomainError):
            triton_ops.log(x)
    assert seen["other"] is False and seen["log"][0] == float("-inf")
    triton_ops.set_domain_checks(True)
    try:
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert seen["other"] is False
    finally:
        triton_ops.set_domain_checks(False)


@pytest.mark.parametrize("value,expected", [("1", True), ("true", True), ("YES", True), ("on", True),
                                            ("0", False), ("false", False), ("No", False), ("", False)])
def test_domain_checks_environment_flag(monkeypatch, value, expected):
    monkeypatch.setenv("TRITON_OPS_DOMAIN_CHECKS", value)
    assert runtime._env_flag("TRITON_OPS_DOMAIN_CHECKS") is expected


def test_domain_checks_environment_garbage_is_loud():
    env = dict(os.environ, PYTHONPATH=ROOT, TRITON_OPS_DOMAIN_CHECKS="maybe")
    out = subprocess.run([sys.executable, "-c", "import triton_ops"], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode != 0 and "TRITON_OPS_DOMAIN_CHECKS='maybe' is not a boolean" in out.stderr
    env["TRITON_OPS_DOMAIN_CHECKS"] = "true"
    code = "import triton_ops; print(triton_ops.runtime.domain_checks_enabled())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "True", out.stderr


# --------------------------------------------------------------------------------------------
# class 6: the tuning store


def _write(path, configs):
    path.write_text(json.dumps({"version": tune.STORE_VERSION, "configs": {tune.device_name(): configs}}))
    tune._cache.clear()
    runtime.clear_plan_caches()


def _load(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        configs = tune.load_store()
    return configs, [str(w.message) for w in caught]


def _ops_still_work():
    a = torch.randn(5, 6, dtype=torch.float64, device=DEVICE)
    b = torch.randn(6, 3, dtype=torch.float64, device=DEVICE)
    torch.testing.assert_close(triton_ops.matmul(a, b).cpu(), a.cpu() @ b.cpu())
    torch.testing.assert_close(triton_ops.gelu(a).cpu(), F.gelu(a.cpu(), approximate="tanh"))


GOOD_GEMM = dict(BLOCK_M=32, BLOCK_N=32, BLOCK_K=32, GROUP_M=8, num_warps=4, num_stages=1)
BAD_VALUES = [True, False, 48, 3, 0, -16, 1 << 14, 2**70, 32.0, "32", None, [32], {"v": 32}]


@pytest.mark.parametrize("key", sorted(GOOD_GEMM))
@pytest.mark.parametrize("bad", BAD_VALUES, ids=repr)
def test_store_entries_outside_the_schema_are_ignored(store, key, bad):
    if key in ("GROUP_M", "num_stages") and bad in (48, 3):  # no power-of-2 rule on these two
        bad = 1000
    cfg = dict(GOOD_GEMM, **{key: bad})
    for bucket in ("8x8x8", "64x64x64"):
        _write(store, {f"gemm|forward|float64|{bucket}": cfg})
        configs, messages = _load(store)
        assert configs == {} and any("malformed" in m for m in messages)
    _ops_still_work()


def test_store_accepts_the_sweep_spaces(store):
    entries = {f"gemm|forward|float32|{i}": cfg for i, cfg in enumerate(autotune.space("gemm"))}
    entries.update({f"pointwise|forward|float32|{i}": cfg for i, cfg in enumerate(autotune.space("pointwise"))})
    _write(store, entries)
    configs, messages = _load(store)
    assert configs == entries and not messages


def test_deeply_nested_store_is_ignored(store):
    store.write_text("[" * 200000 + "]" * 200000)
    configs, messages = _load(store)
    assert configs == {} and any("ignoring the tuning store" in m for m in messages)
    _ops_still_work()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_store_is_ignored_not_waited_on(tmp_path, monkeypatch):
    path = tmp_path / "fifo.json"
    os.mkfifo(path)
    monkeypatch.setenv("TRITON_OPS_TUNE_STORE", str(path))
    code = ("import warnings, triton_ops; from triton_ops import tune\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always'); print(tune.load_store(), [str(m.message) for m in w])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("{}") and "not a regular file" in out.stdout


def test_directory_store_is_ignored(store):
    store.mkdir()
    configs, messages = _load(store)
    assert configs == {} and messages


JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**80, 2**80) | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                    max_leaves=20)
SCHEMA_KEYS = st.sampled_from(sorted(tune._SCHEMA["gemm"]) + sorted(tune._SCHEMA["pointwise"]))
CONFIG = st.dictionaries(SCHEMA_KEYS, st.integers(-4, 1 << 16) | st.booleans() | JSON, min_size=1, max_size=6)
KEY = st.sampled_from(["gemm", "pointwise", "other", ""]).map(lambda f: f"{f}|forward|float32|8x8")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(JSON, st.dictionaries(KEY, CONFIG | JSON, max_size=4).map(
    lambda c: {"version": tune.STORE_VERSION, "configs": {tune.device_name(): c}})))
def test_store_fuzz_never_raises_and_keeps_only_valid_entries(store, data):
    store.write_text(json.dumps(data))
    tune._cache.clear()
    configs, _ = _load(store)
    assert isinstance(configs, dict)
    for key, cfg in configs.items():
        family = key.split("|")[0]
        schema = tune._SCHEMA[family]
        assert set(cfg) == set(schema)
        for k, v in cfg.items():
            lo, hi, pow2 = schema[k]
            assert type(v) is int and lo <= v <= hi and (not pow2 or v & (v - 1) == 0)


# --------------------------------------------------------------------------------------------
# class 7: edges of shapes and arguments


@pytest.mark.parametrize("activation", [None, "gelu"])
@pytest.mark.parametrize("in_f,out_f", [(0, 4), (5, 0), (0, 0)])
def test_linear_with_zero_features_as_torch(in_f, out_f, activation):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, in_f, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    w = torch.randn(out_f, in_f, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    b = torch.randn(out_f, generator=g, dtype=torch.float64).to(DEVICE).requires_grad_()
    y = triton_ops.linear(x, w, b, activation)
    ref = F.linear(x, w, b)
    ref = F.gelu(ref, approximate="tanh") if activation else ref
    torch.testing.assert_close(y, ref)
    gy = torch.randn(y.shape, generator=g, dtype=torch.float64).to(DEVICE)
    for ours, theirs in zip(torch.autograd.grad(y, (x, w, b), gy), torch.autograd.grad(ref, (x, w, b), gy)):
        torch.testing.assert_close(ours, theirs)


def test_sum_over_none_and_empty_dims_as_torch():
    x = torch.randn(2, 3, 4, dtype=torch.float64, device=DEVICE)
    for dim in (None, (), []):
        torch.testing.assert_close(triton_ops.sum(x, dim), torch.sum(x, dim))
        torch.testing.assert_close(triton_ops.sum(x, dim, True), torch.sum(x, dim, True))
    torch.testing.assert_close(triton_ops.sum(x), x.sum())


@pytest.mark.parametrize("shape", [[4.7], [4.0], [True], ["4"], 4.0])
def test_layer_norm_rejects_non_integer_shapes(shape):
    x = torch.randn(3, 4, device=DEVICE)
    with pytest.raises(TypeError, match="normalized_shape"):
        triton_ops.layer_norm(x, shape)


@pytest.mark.skipif(DEVICE.type != "cuda", reason="65,536 programs: a GPU-sized launch")
def test_gemm_batch_past_grid_axis_limit():
    a = torch.randn(70000, 2, 3, device="cuda", dtype=torch.float64)
    b = torch.randn(70000, 3, 2, device="cuda", dtype=torch.float64)
    torch.testing.assert_close(triton_ops.matmul(a, b), a @ b)
