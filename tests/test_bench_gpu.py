"""The benchmark's GPU timing on a real device (runs in bench/gpu_check.sh's test stage)."""
import pytest
import torch

import triton_ops

pytestmark = pytest.mark.skipif(triton_ops.backend() != "cuda", reason="needs a CUDA device")


def test_graph_timer_times_a_clone():
    from bench import timing

    x = torch.randn(1 << 22, device="cuda")
    samples, method = timing.device_time(lambda i: x.clone(), calls=8)
    assert method == "cuda_graph" and len(samples) == timing.REPLAYS and all(s > 0 for s in samples)


@pytest.mark.parametrize("name", ["gelu", "mse_loss", "layer_norm", "cross_entropy_logits", "linear"])
def test_timed_rows_forward_vjp_and_full_on_the_device(name):
    from bench import __main__ as bench

    spec = triton_ops.registry[name]
    shape = (256, 128, 128) if spec.family == "matmul" else (256, 1024)
    rows = bench.timed_rows(spec, shape, torch.bfloat16, ["forward", "backward", "full"], ["triton_ops", "torch"])
    errors = [r for r in rows if r[3] == "error"]
    assert not errors, errors
    got = {(d, p, m): (v, method) for d, p, impl, m, v, method in rows}
    for direction in ("forward", "backward", "full"):
        for provider in ("triton_ops", "torch"):
            ms, method = got[(direction, provider, "time_ms")]
            assert ms > 0 and method in ("cuda_graph", "profiler")
            assert got[(direction, provider, "time_p20_ms")][0] <= ms <= got[(direction, provider, "time_p80_ms")][0]
