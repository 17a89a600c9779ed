"""Run under the compile-only backend (tests/test_compile_sm90.py): the floating-point
instructions of each norm forward's two variants (statistics stored for the VJP, or not) compiled
for sm_90, as JSON. A different mix means the variants round differently: a no-grad call and a
call that saves statistics would disagree in the last bits (SPEC 0, determinism)."""
import collections
import json
import re

import torch
from triton.tools.disasm import get_sass

from triton_ops import runtime
from triton_ops.launchers import norm

FP_OPS = ("FFMA", "FMUL", "FADD", "MUFU", "FSETP", "FSEL")


def fp_mix(plan, **pointers) -> dict:
    compiled = plan.kernel.warmup(grid=plan.grid, **plan.fixed, **plan.options, **pointers)
    ops = collections.Counter(re.sub(r"^@!?U?P\w+\s+", "", line.split("\t", 1)[1]).split(" ")[0].split(".")[0]
                              for line in get_sass(compiled.asm["cubin"]).splitlines() if "\t" in line and ";" in line)
    return {k: ops[k] for k in FP_OPS}


assert runtime.backend() == "compile-only"
out = {}
for D in (40, 8192, 20000):
    x, y, w, b, stats = torch.empty(6, D), torch.empty(6, D), torch.empty(D), torch.empty(D), torch.empty(2, 6)
    for save in (False, True):
        ln = norm._forward_plan((6, D), x.stride(), y.stride(), 1, torch.float32, w.stride(), b.stride(), save, x.device)
        out[f"layer_norm {D} {save}"] = fp_mix(ln, y_ptr=y, mean_ptr=stats[0] if save else y,
                                               rstd_ptr=stats[1] if save else y, x_ptr=x, w_ptr=w, b_ptr=b,
                                               numbers=(1e-5, 0.0))
        rms, _ = norm._rms_plan((6, D), (("x", x.stride()), ("y", y.stride())), w.stride(), 1, torch.float32, False,
                                x.device, False, save)
        out[f"rms_norm {D} {save}"] = fp_mix(rms, y_ptr=y, rstd_ptr=stats[1] if save else y, x_ptr=x, w_ptr=w,
                                             numbers=(1e-5, 0.0))
print(json.dumps(out))
