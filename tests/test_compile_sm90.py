"""Every kernel compiles for sm_90 with the installed Triton (PTX + ptxas), without a GPU."""
import os
import subprocess
import sys

import pytest

import triton_ops

HERE = os.path.dirname(__file__)


@pytest.mark.skipif(triton_ops.backend() != "interpreter", reason="the GPU runs the kernels for real")
def test_every_op_compiles_for_sm90():
    env = dict(os.environ, TRITON_OPS_COMPILE_ONLY="1", PYTHONPATH=os.path.dirname(HERE))
    env.pop("TRITON_INTERPRET", None)
    proc = subprocess.run([sys.executable, os.path.join(HERE, "compile_sm90.py")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert proc.stdout.count("compiled ") == len(triton_ops.registry) + 1
    assert "compiled int64 variants" in proc.stdout and "gemm variants ok" in proc.stdout
    assert "pipelined variants ok" in proc.stdout


@pytest.mark.skipif(triton_ops.backend() != "interpreter", reason="the GPU runs the kernels for real")
def test_norm_forward_variants_round_alike():
    """layer_norm's and rms_norm's forward with statistics saved and without compile to the same
    floating-point instruction mix on sm_90 (the GPU run found layer_norm's no-grad output off
    in the last bits: its mean's reciprocal multiply folded into an FMA only when unstored)."""
    import json

    env = dict(os.environ, TRITON_OPS_COMPILE_ONLY="1", PYTHONPATH=os.path.dirname(HERE))
    env.pop("TRITON_INTERPRET", None)
    proc = subprocess.run([sys.executable, os.path.join(HERE, "stats_variants_sm90.py")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    mixes = json.loads(proc.stdout.strip().splitlines()[-1])
    for key, mix in mixes.items():
        if key.endswith("False"):
            assert mix == mixes[key[:-5] + "True"], (key, mix, mixes[key[:-5] + "True"])
