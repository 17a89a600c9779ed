"""Autotune sweeps and the tuning store."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import triton_ops
from triton_ops import autotune, tune
from helpers import DEVICE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def store(tmp_path, monkeypatch):
    path = tmp_path / "tuned.json"
    monkeypatch.setenv("TRITON_OPS_TUNE_STORE", str(path))
    tune._cache.clear()
    triton_ops.runtime.clear_plan_caches()
    yield path
    tune._cache.clear()
    triton_ops.runtime.clear_plan_caches()


def test_sweep_writes_store_and_a_fresh_process_uses_it(store):
    # An injected timer stands in for the GPU: it makes one config the fastest.
    space = autotune.space("gemm")
    favourite = space[len(space) // 2]
    timer_calls = []

    def timer(fn):
        fn()
        timer_calls.append(dict(tune._forced["gemm"]))
        return 1.0 if tune._forced["gemm"] == favourite else 2.0

    rows, winners = autotune.sweep(["matmul"], [(48, 40)], [torch.float32], timer=timer, progress=False)
    assert len(rows) == len(space) and all(r["ok"] for r in rows)  # every config checked against the reference
    assert len(timer_calls) == len(space)
    assert list(winners.values()) == [favourite]
    data = json.loads(store.read_text())
    assert data["version"] == tune.STORE_VERSION and tune.device_name() in data["configs"]
    code = ("import torch, triton_ops; from triton_ops.launchers.matmul import gemm_config; "
            "import json; print(json.dumps(gemm_config(48, 40, 40, torch.float32)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == favourite


@pytest.mark.parametrize("op", ["matmul", "linear"])
def test_gemm_shapes_are_m_n_k(store, op):
    # a GEMM op's sweep shape is the GEMM's M x N x K (N != K: a 2-D input shape cannot say it)
    space = autotune.space("gemm")
    favourite = space[-1]
    rows, winners = autotune.sweep([op], [(24, 40, 56)], [torch.float32], progress=False,
                                   timer=lambda fn: 1.0 if tune._forced["gemm"] == favourite else 2.0)
    assert all(r["ok"] for r in rows)
    assert list(winners) == [tune.store_key("gemm", "forward", torch.float32, (24, 40, 56))]
    tune._cache.clear()
    from triton_ops.launchers.matmul import gemm_config
    assert gemm_config(24, 40, 56, torch.float32) == favourite


def test_gpu_gemm_space_follows_the_precision(monkeypatch):
    # on a GPU an IEEE float32 GEMM (FMA units) sweeps shallow K steps, a TF32 or
    # 16-bit one the tensor-core tiles; float64 is always FMA
    monkeypatch.setattr(triton_ops.runtime, "INTERPRETER", False)
    tensor_core = autotune.space("gemm", torch.bfloat16)
    assert {c["BLOCK_K"] for c in tensor_core} == {32, 64}
    assert autotune.space("gemm", torch.float64) != tensor_core
    for precision, fma in (("highest", True), ("high", False)):
        monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda p=precision: p)
        cfgs = autotune.space("gemm", torch.float32)
        assert (min(c["BLOCK_K"] for c in cfgs) == 16) == fma and (cfgs == tensor_core) != fma
        assert all(tune._valid("gemm", c) for c in cfgs)  # the store keeps every config a sweep can pick


def test_dry_run_lists_the_space(store):
    rows, winners = autotune.sweep(["gelu"], [(8, 16)], [torch.float32], dry_run=True, progress=False)
    assert len(rows) == len(autotune.space("pointwise")) and not winners and not store.exists()


@pytest.mark.skipif(triton_ops.backend() != "interpreter", reason="the interpreter's sweep (no timer); "
                    "a GPU's times its configs and stores the winners")
def test_interpreter_sweep_checks_but_does_not_store(store):
    rows, winners = autotune.sweep(["gelu"], [(8, 16)], [torch.float32], progress=False)
    assert all(r["ok"] for r in rows) and all(r["ms"] is None for r in rows)
    assert not winners and not store.exists()


@pytest.mark.parametrize("content", ["{not json", json.dumps({"version": 999, "configs": {}}),
                                     json.dumps({"version": 1, "configs": {"DEVICE": {
                                         "gemm|forward|float32|64x64x64": {"BLOCK_M": "big"}}}})])
def test_corrupt_or_stale_store_is_ignored_with_a_warning(store, content):
    store.write_text(content.replace("DEVICE", tune.device_name()))  # a malformed entry of this device's
    with pytest.warns(UserWarning, match="triton_ops.tune: ignoring"):
        assert tune.lookup("gemm", torch.float32, (64, 64, 64)) is None
    a = torch.randn(64, 64, device=DEVICE)
    torch.testing.assert_close(triton_ops.matmul(a, a), a @ a, rtol=1e-4, atol=1e-4)  # still works
