"""The benchmark harness on CPU: the provider mapping, counted rows, the GPU timing code driven by
an injected timer, sweeps' case lists and the host-cost mode."""
import csv
import math

import pytest
import torch

import triton_ops
from bench import __main__ as bench
from bench import cases, host, providers, timing

pytestmark = pytest.mark.skipif(triton_ops.backend() != "interpreter", reason="the CPU harness")
OPS = sorted(n for n in triton_ops.registry if n != "identity")


@pytest.mark.parametrize("name", sorted(triton_ops.registry))
def test_torch_call_computes_the_op(name):
    spec = triton_ops.registry[name]
    args = cases.make_args(spec, (6, 10, 12) if spec.family == "matmul" else (6, 10), torch.float64, "cpu")
    torch.testing.assert_close(providers.TORCH[name].fn(*args), spec.reference(*args), rtol=1e-9, atol=1e-9)


def read_rows(path):
    return list(csv.DictReader(open(path)))


def test_quick_names_the_torch_call_and_counts_one_aten_launch(tmp_path):
    ops = ["gelu", "elu", "layer_norm", "mse_loss", "huber_loss", "binary_cross_entropy", "cross_entropy_logits", "add"]
    assert bench.main(["--quick", "--no-progress", "--ops", *ops, "--out", str(tmp_path / "q.csv")]) == 0
    rows = read_rows(tmp_path / "q.csv")
    launches = {r["op"]: float(r["value"]) for r in rows
                if (r["provider"], r["direction"], r["metric"]) == ("torch", "forward", "launches")}
    for op in ops[:-2]:
        assert launches[op] == 1, (op, launches[op])
    assert launches["cross_entropy_logits"] <= 2
    impl = {r["op"]: r["impl"] for r in rows if r["provider"] == "torch"}
    assert impl["gelu"] == "F.gelu(x, approximate='tanh')" and impl["cross_entropy_logits"] == "F.cross_entropy(z, target)"
    assert all(r["impl"] and r["device"] and r["torch"] and r["triton"] and r["git_rev"] not in ("", "unknown")
               for r in rows)
    skipped = [r for r in rows if r["metric"] == "skipped"]
    assert {r["op"] for r in skipped} == {"layer_norm", "cross_entropy_logits"}  # liger, not runnable here
    # add's gradients alias g in eager: its minimum VJP moves only what a reduced operand needs
    ratio = {(r["op"], r["provider"]): float(r["value"]) for r in rows
             if r["direction"] == "backward" and r["metric"] == "bytes_ratio"}
    assert ratio[("add", "torch")] == pytest.approx(1.0, abs=0.01)


class FakeTimer:
    """Runs the first steps (the code under test; rotation included), then returns fixed samples."""
    method = "fake"

    def __init__(self, samples):
        self.samples, self.calls = samples, []

    def __call__(self, step, calls):
        for i in range(min(calls, 3)):
            step(i)
        self.calls.append(calls)
        return list(self.samples)


class BrokenTimer:
    method = "broken"

    def __call__(self, step, calls):
        raise RuntimeError("capture failed")


def test_timed_rows_with_an_injected_timer():
    spec = triton_ops.registry["mse_loss"]
    timer = FakeTimer([5.0, 1.0, 3.0, 2.0, 4.0])
    bench._clone_ms.clear()
    rows = bench.timed_rows(spec, (8, 16), torch.float32, ["forward", "backward", "full"], ["torch", "liger"],
                            timers=(BrokenTimer(), timer), device="cpu")
    got = {(d, p, m): (v, method) for d, p, impl, m, v, method in rows}
    assert got[("forward", "torch", "time_ms")] == (3.0, "fake")
    assert got[("forward", "torch", "time_p20_ms")][0] == pytest.approx(1.8)
    assert got[("forward", "torch", "time_p80_ms")][0] == pytest.approx(4.2)
    fwd_bytes, bwd_bytes = spec.min_bytes(*cases.make_args(spec, (8, 16), torch.float32, "cpu"))
    assert got[("backward", "torch", "gbps")][0] == pytest.approx(bwd_bytes / 3e-3 / 1e9)
    assert got[("full", "torch", "gbps")][0] == pytest.approx((fwd_bytes + bwd_bytes) / 3e-3 / 1e9)
    # the clone, timed the same way, moves the same bytes: same samples, 100 %
    assert got[("forward", "torch", "pct_clone")][0] == pytest.approx(100.0)
    assert not any(p == "liger" for _, p, *_ in rows)  # Liger has no MSE: no row
    (skip,) = bench.timed_rows(triton_ops.registry["layer_norm"], (8, 16), torch.float32, ["forward"], ["liger"],
                               timers=(timer,), device="cpu")
    assert skip[1:4] == ("liger", providers.liger_missing(), "skipped") and math.isnan(skip[4])
    # tiny inputs: many calls per sample, so that each sample moves >= 256 MiB
    assert max(timer.calls) == timing.MAX_CALLS and fwd_bytes * timing.MAX_CALLS < timing.MIN_BYTES_PER_SAMPLE


def test_timing_statistics():
    assert timing.percentiles([4, 1, 3, 2, 5]) == [1.8, 3.0, 4.2]
    assert timing.calls_for(64 << 20) == 4 and timing.calls_for(1 << 30) == 1 and timing.calls_for(10) == 1000
    assert timing.rotation(256 << 20, 50 << 20) == 1 and timing.rotation(4 << 20, 50 << 20) == timing.MAX_SETS
    assert timing.rotation(40 << 20, 50 << 20) == 3
    assert timing.kernel_samples([1000, 500, 2000, 1000], replays=2, calls=1) == [1.5, 3.0]
    with pytest.raises(RuntimeError):
        timing.kernel_samples([1.0, 2.0, 3.0], replays=2, calls=1)
    ticks = iter(range(0, 10**6, 100))  # every clock read advances 100 s
    assert timing.host_us(lambda: None, calls=10, repeats=3, warmup=0, clock=lambda: next(ticks)) == 10 * 1e6
    with pytest.raises(RuntimeError, match="broken: RuntimeError: capture failed"):
        timing.device_time(lambda i: None, 1, (BrokenTimer(),))


def test_sweep_lists_the_issue_shapes(capsys):
    assert bench.main(["--sweep", "--dry-run", "--dtypes", "bfloat16", "float32"]) == 0
    out = capsys.readouterr().out
    assert "layer_norm              16384x32768" in out and "layer_norm              4096x1024" in out
    assert "gelu                    4096x4096 " in out and "gelu                    65536x4096" in out  # 2^24, 2^28
    assert "matmul                  8192x11008x14336" in out and "linear                  4096x4096x4096" in out
    assert "float32" in out and "bfloat16" in out


def test_host_mode_rows_and_summary():
    rows = host.run(["gelu", "mse_loss"], calls=20, repeats=3)
    keys = {(r["op"], r["provider"], r["direction"]) for r in rows}
    assert keys == {(op, p, d) for op in ("gelu", "mse_loss") for p in ("triton_ops", "torch") for d in host.DIRECTIONS}
    assert host.DIRECTIONS == ("forward", "backward", "full")
    assert all(r["metric"] == "host_us" and r["value"] > 0 for r in rows)
    assert {r["method"] for r in rows if r["provider"] == "triton_ops"} == {"compile-only launches"}
    text = host.summary(rows)
    assert "forward: " in text and "within +8 µs" in text and "within +15 µs" in text


def test_sweep_outputs_and_gpu_page_from_timed_rows(tmp_path):
    """The GPU path's rows (timed here with an injected timer) through the CSV, the sweep plots
    and the Markdown page that gpu_check.sh writes."""
    meta = bench.environment()
    records = []
    for name, shape in (("gelu", (4, 64)), ("gelu", (16, 64)), ("matmul", (16, 16, 16))):
        spec = triton_ops.registry[name]
        rows = bench.timed_rows(spec, shape, torch.float32, ["forward"], ["triton_ops", "torch"],
                                timers=(FakeTimer([2.0, 1.0, 3.0]),), device="cpu")
        records += [dict(op=name, family=spec.family, direction=d, provider=p, impl=impl, dtype="torch.float32",
                         shape=cases.shape_label(shape), metric=m, value=v, method=method, **meta)
                    for d, p, impl, m, v, method in rows]
    plots = bench.write_outputs(records, tmp_path / "s.csv", sweep=True)
    assert {p.name for p in plots} == {"s-pointwise-forward.png", "s-gemm-forward.png"}
    page = tmp_path / "page.md"
    assert bench_report_main([str(tmp_path / "s.csv"), "--title", "t", "--out", str(page)]) == 0
    text = page.read_text()
    assert "| gelu | forward | float32 | 16x64 | 100.0 | 100.0 | 2.0000 (1.4000-2.6000) |" in text
    assert "- `matmul`: `torch.matmul(a, b)`" in text


def bench_report_main(argv):
    from bench import report

    return report.main(argv)


def test_targets_table_says_which_measured_targets_are_met(tmp_path):
    """`bench.report --targets`: each measured row an issue's target names, met or not; an op's
    own key wins over its family's, and a step-only op's forward/backward rows get no step target."""
    import csv

    def row(op, family, direction, provider, metric, value):
        return dict(op=op, family=family, direction=direction, provider=provider, impl="", dtype="torch.bfloat16",
                    shape="8x8", metric=metric, value=value, method="", device="", torch="", triton="", git_rev="")

    rows = [row("gelu", "unary", "forward", "triton_ops", "pct_clone", 91.0),
            row("gelu", "unary", "backward", "triton_ops", "pct_clone", 89.0),
            row("layer_norm", "norm", "backward", "triton_ops", "pct_clone", 81.0),
            row("matmul", "matmul", "forward", "triton_ops", "tflops", 700.0),
            row("matmul", "matmul", "forward", "torch", "tflops", 800.0),
            row("linear_cross_entropy", "matmul", "backward", "triton_ops", "tflops", 9999.0),
            row("linear_cross_entropy", "matmul", "backward", "torch", "tflops", 600.0)]
    rows += [row("linear_cross_entropy", "matmul", "full", p, m, ms) for p, ms in
             (("triton_ops", 30.0), ("torch", 40.0), ("liger", 29.0)) for m in ("time_ms", "time_p20_ms", "time_p80_ms")]
    path = tmp_path / "t.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    page = tmp_path / "page.md"
    assert bench_report_main([str(path), "--targets", "--out", str(page)]) == 0
    text = page.read_text()
    assert "3 of 6 measured targets met." in text
    assert "| #13 | gelu | forward | bfloat16 | 8x8 | pct | 91.0% of clone | >= 90% | yes |" in text
    assert "| #13 | gelu | backward | bfloat16 | 8x8 | pct | 89.0% of clone | >= 90% | **no** |" in text
    assert "| #13 | layer_norm | backward | bfloat16 | 8x8 | pct | 81.0% of clone | >= 80% | yes |" in text
    assert "700 / 800 TFLOP/s = 0.88x | >= 0.90x torch | **no** |" in text
    assert "30.0000 / 29.0000 ms = 1.03x | <= 1.00x liger's time | **no** |" in text
    assert "30.0000 / 40.0000 ms = 0.75x | <= 1.20x torch's time | yes |" in text
    assert "| linear_cross_entropy | backward |" not in text.split("## ")[1]


def test_profile_steps_and_report():
    """`python -m bench.profile`'s pieces that need no GPU: the forward and backward steps of an
    op (run here on the interpreter) and the per-kernel table, largest first."""
    from bench import profile

    spec = triton_ops.registry["layer_norm"]
    args = cases.make_args(spec, (4, 32), torch.float32, "cpu")
    made = profile.steps(spec, args)
    assert set(made) == {"forward", "backward"}
    for step in made.values():
        step()
    text = profile.report("layer_norm 4x32", "backward", {"combine": 1.0, "layer_norm_bwd_kernel": 3.0})
    assert text.splitlines() == ["layer_norm 4x32 backward: 4.0 µs of kernels a call",
                                 "          3.0 µs  75.0%  layer_norm_bwd_kernel",
                                 "          1.0 µs  25.0%  combine"]


def test_variants_families_name_real_knobs():
    """Every bench.variants family's cases bind on CPU and each variant's knobs patch attributes
    that exist, and restore them (a misnamed knob would fail only on the GPU lease)."""
    from bench import variants
    from triton_ops.launchers import shape

    for family in ("norm", "reduce", "embedding", "loss", "lce", "gemm32", "tf32"):
        for op, direction, shp, named in variants.family_cases(family, hidden=(1024,)):
            assert op in triton_ops.registry
            assert direction in ("forward", "backward", "full") and cases.shape_label(shp)
            for name, knobs in named:
                precision = torch.get_float32_matmul_precision()
                with knobs():
                    if family == "tf32":
                        assert torch.get_float32_matmul_precision() == "high"
                assert torch.get_float32_matmul_precision() == precision, (family, name)
    before = shape.SCATTER_TILE_BYTES
    with variants.patched(shape, SCATTER_TILE_BYTES=128):
        assert shape.SCATTER_TILE_BYTES == 128
    assert shape.SCATTER_TILE_BYTES == before
