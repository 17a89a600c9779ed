"""``python -m bench.static --out FILE.csv``: what each kernel will do on an H100, read from its
sm_90 machine code on a machine with no GPU.

Every registered op's forward and VJP run at the quick bench shapes (``bench.cases``) under the
compile-only backend: each launch compiles its kernel for sm_90 with the launcher's own
(default) configuration and returns without running. For each launch, one row:

  kernel, config          the kernel and its launch configuration (constexprs, warps, stages)
  launches                how many launches of the call had this configuration and grid
  registers, spill_bytes  from ``ptxas -v`` on the kernel's PTX (spill stores + spill loads)
  smem_bytes              shared memory per program (Triton's metadata)
  ctas_per_sm             resident programs per SM from registers, shared memory and warps
  programs, waves         the launch grid, and programs / (132 SMs x ctas_per_sm)
  load_bits, store_bits   widest global load / store (PTX ``ld.global.v4.b32`` = 128 bits; a
                          ``cp.async`` global-to-shared copy of 16 bytes counts as a 128-bit load)
  min_load_bits, min_store_bits   narrowest global load / store that walks a tensor
  wgmma, tma              Hopper matrix instructions / bulk tensor copies present
  wave_efficiency         waves / ceil(waves): the share of the last wave's slots that hold a
                          program (programs of equal work; 1.0 = whole waves)
  instructions            SASS instructions (NOPs left out) of the innermost loop's body, or of
                          the whole kernel where it has no loop: what one thread issues per tile
  instr_per_element       instructions x threads / tile elements (the product of the BLOCK_*
                          constexprs): thread-instructions issued per element of a tile
  issue_pct               the % of a clone's bandwidth that issue alone allows a memory-bound
                          kernel: 100 x ISSUE_PER_BYTE x (the op direction's minimum bytes per
                          element) / instr_per_element, at most 100. Read it on the op's main
                          kernel (the one that walks the big tensor), not on a combine.
  inflight_bytes          the most bytes of global loads one thread has issued and not yet used
                          at any point of that same loop (or kernel): an LDG is pending until the
                          first instruction that reads its registers; a pipelined loop's LDGSTS
                          copies count x the iterations its DEPBAR.LE keeps in flight
                          (``inflight_bytes``). Read it x threads x ctas_per_sm: on the H200,
                          memory-bound main kernels holding 16-32 KiB an SM read 68-80% of clone,
                          48-64 KiB 89-103% (docs/benchmarks/issue13-inflight.md).

The backend is chosen at import, so this module re-runs itself in a subprocess with
``TRITON_OPS_COMPILE_ONLY=1`` when imported under another backend.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import math
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

# H100 SXM (sm_90): per-SM limits used for occupancy
SMS = 132
REGS_PER_SM = 65536
WARPS_PER_SM = 64
CTAS_PER_SM = 32
SMEM_PER_SM = 228 * 1024
SMEM_RESERVED_PER_CTA = 1024
REG_ALLOC_UNIT = 256           # registers are allocated per warp in units of 256
# Thread-instructions per byte moved that still keep pace with a clone: calibrated on the H200 run
# of 2026-11-27 (docs/benchmarks/gpu/h200-2026-11-27.md), where the bf16 forwards of elu, log,
# gelu, gelu_erf and binary_cross_entropy (4 bytes an element, 30.6 to 63.5 instructions an
# element) each reached 2350 / instr_per_element % of clone within 10%: about 23.5 instructions an
# element at full speed, 70% of the chip's issue rate (132 SMs x 4 schedulers x 32 lanes x 1.98 GHz
# over 4 bytes x 0.98e12 elements/s). An H100 (3.35 TB/s, the same issue rate) has 1.4x more.
ISSUE_PER_BYTE = 23.5 / 4

COLUMNS = ["op", "direction", "dtype", "shape", "kernel", "config", "launches", "registers", "spill_bytes", "smem_bytes",
           "num_warps", "ctas_per_sm", "programs", "waves", "load_bits", "store_bits", "min_load_bits",
           "min_store_bits", "wgmma", "tma", "wave_efficiency", "instructions", "instr_per_element", "issue_pct", "inflight_bytes"]


def ctas_per_sm(registers: int, num_warps: int, smem_bytes: int) -> int:
    """Resident programs per SM on an H100, the minimum over registers, warps and shared memory."""
    regs_per_warp = -(-registers * 32 // REG_ALLOC_UNIT) * REG_ALLOC_UNIT
    by_regs = (REGS_PER_SM // regs_per_warp) // num_warps if regs_per_warp else CTAS_PER_SM
    by_warps = WARPS_PER_SM // num_warps
    by_smem = SMEM_PER_SM // (smem_bytes + SMEM_RESERVED_PER_CTA) if smem_bytes else CTAS_PER_SM
    return max(0, min(CTAS_PER_SM, by_regs, by_warps, by_smem))


_ACCESS = re.compile(r"\b(ld|st)\.global(?:\.[A-Za-z0-9_:]+)*?(?:\.v(\d))?\.(?:b|f|u|s)(\d+)\b[^\[]*\[\s*(%\w+)")
# global -> shared copies (the GEMM's operand tiles): cp.async.cg.shared.global [dst], [src], bytes
_COPY = re.compile(r"\bcp\.async\.c[ag]\.shared\.global(?:\.\w+)*\s+\[[^\]]*\],\s*\[\s*(%\w+)[^\]]*\],\s*(0x[0-9a-fA-F]+|\d+)")
_PARAM = re.compile(r"ld\.param\.\w+\s+(%\w+)")


def access_bits(ptx: str) -> dict:
    """Widest global load and store in a PTX text, in bits (vector x element), and the narrowest
    of those that index a tensor: an access whose address is a kernel parameter itself (a 0-d
    operand, a scalar every thread reads) is no tensor walk and is left out of the minimum."""
    uniform = set(_PARAM.findall(ptx))
    bits = {"ld": [], "st": []}
    walks = {"ld": [], "st": []}
    accesses = [(kind, int(vec or 1) * int(width), address) for kind, vec, width, address in _ACCESS.findall(ptx)]
    accesses += [("ld", 8 * int(size, 0), address) for address, size in _COPY.findall(ptx)]
    for kind, width, address in accesses:
        bits[kind].append(width)
        if address not in uniform:
            walks[kind].append(width)
    return {"load_bits": max(bits["ld"], default=0), "store_bits": max(bits["st"], default=0),
            "min_load_bits": min(walks["ld"], default=0), "min_store_bits": min(walks["st"], default=0)}


_SASS = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
_LOAD = re.compile(r"\bLDG(?:STS)?\b")  # LDGSTS: a pipelined loop's global -> shared copies
_BACK_BRANCH = re.compile(r"\bBRA\s+(?:`?\(\.L_x_\d+\)\s*)?(0x[0-9a-f]+)")
_REG = re.compile(r"\bR(\d+)(?:\.reuse)?(\.64)?\b")
_DEPBAR = re.compile(r"\bDEPBAR\.LE\s+SB0,\s*(0x[0-9a-f]+|\d+)")
# bytes an LDG / LDGSTS moves per thread, by its width suffix (no suffix: 32 bits)
_LOAD_BYTES = {"128": 16, "64": 8, "U16": 2, "S16": 2, "U8": 1, "S8": 1}


def sass_lines(text: str) -> list[tuple[int, str]]:
    """(address, instruction) of a ``cuobjdump -sass`` listing, NOPs left out."""
    return [(int(a, 16), ins) for a, ins in _SASS.findall(text) if not ins.startswith("NOP")]


def inner_loop(lines: list[tuple[int, str]]) -> tuple[list[tuple[int, str]], bool]:
    """(body, looped): the innermost loop that loads from global memory (the shortest span closed
    by a backward branch holding an LDG, or an LDGSTS: a software-pipelined loop's copies to shared
    memory), or the whole kernel without such a loop (a loop of a reduction tree or a row's tail is
    no stream of tiles)."""
    loops = []
    for addr, ins in lines:
        m = _BACK_BRANCH.search(ins)
        if m and int(m.group(1), 16) < addr:
            first = int(m.group(1), 16)
            if any(_LOAD.search(i) for a, i in lines if first <= a <= addr):
                loops.append((addr - first, first, addr))
    if not loops:
        return lines, False
    _, first, last = min(loops)
    return [(a, i) for a, i in lines if first <= a <= last], True


def _load_bytes(opcode: str) -> int:
    return next((_LOAD_BYTES[s] for s in opcode.split(".")[1:] if s in _LOAD_BYTES), 4)


def _registers(operand: str) -> set[int]:
    regs = set()
    for n, wide in _REG.findall(operand):
        regs.update(range(int(n), int(n) + (2 if wide else 1)))
    return regs


def inflight_bytes(body: list[tuple[int, str]], looped: bool) -> int:
    """The most bytes of global loads one thread has issued and not yet used at any point of
    ``body`` (``inner_loop``'s): an ``LDG``'s destination registers (its bytes: ``.128`` = 16,
    ``.64`` = 8, ``.U16`` = 2, plain = 4) stay pending until the first later instruction
    that reads one of them (or an LDG that overwrites them). A loop's body is walked twice, the
    maximum read on the second walk, so that a load issued for the next iteration (a register
    prefetch) counts where it is pending. A software-pipelined loop's copies to shared memory
    (``LDGSTS``, committed in K groups an iteration by K ``LDGDEPBAR``) are read from registers by
    no one: the loop's wait ``DEPBAR.LE SB0, N`` leaves N groups in flight and the iteration
    commits K more, so they count as the bytes one iteration copies x (N + K) / K (the pipeliner's
    stages - 1 iterations), added to the most pending registers'. Instructions are walked in
    address order, branches inside the span not followed (a kernel without a loop, a loop's
    masked tail): the count is of the code as laid out, which is what ptxas scheduled."""
    pending: dict[int, tuple[set[int], int]] = {}  # address of the LDG -> (its registers, bytes)
    copies, waiting, commits, most = 0, 0, 0, 0
    for walk in range(2 if looped else 1):
        for addr, ins in body:
            ins = re.sub(r"^@!?U?P\w+\s+", "", ins)
            opcode, _, rest = ins.partition(" ")
            operands = [o.strip() for o in rest.split(",")] if rest else []
            # the first operand is written, not read, where it is a bare register (LDG R4, ...;
            # FADD R1, ...); stores and copies name an address there ([R2], desc[UR4][R2.64])
            writes = _registers(operands[0]) if operands and re.fullmatch(r"R\d+", operands[0]) else set()
            reads = set().union(*map(_registers, operands[1 if writes else 0:]))
            for key in [k for k, (regs, _) in pending.items() if regs & reads]:
                del pending[key]
            if opcode.startswith("LDGSTS"):
                copies += _load_bytes(opcode) if walk == 0 else 0
            elif opcode.startswith("LDG") and writes:
                nbytes = _load_bytes(opcode)
                first = min(writes)
                regs = set(range(first, first + max(1, nbytes // 4)))
                for key in [k for k, (r, _) in pending.items() if r & regs]:
                    del pending[key]
                pending[addr] = (regs, nbytes)
            elif opcode == "LDGDEPBAR":
                commits += walk == 0
            elif (m := _DEPBAR.search(ins)) and walk == 0:
                waiting = max(waiting, int(m.group(1), 0))
            if walk == (1 if looped else 0):
                most = max(most, sum(b for _, b in pending.values()))
    return most + copies * (waiting + max(1, commits)) // max(1, commits)


def sass_report(cubin: bytes) -> dict:
    """``instructions`` (the SASS instructions of ``inner_loop``'s body: what one thread issues
    per tile) and ``inflight_bytes`` (``inflight_bytes`` of that body), from one disassembly."""
    from triton.tools.disasm import path_to_cuobjdump

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "k.cubin")
        Path(path).write_bytes(cubin)
        text = subprocess.run([path_to_cuobjdump(), "-sass", path], capture_output=True, text=True,
                              timeout=300).stdout
    body, looped = inner_loop(sass_lines(text))
    return {"instructions": len(body), "inflight_bytes": inflight_bytes(body, looped)}


def issue_pct(instr_per_element: float, bytes_per_element: float) -> float:
    """The % of clone bandwidth that instruction issue allows (``ISSUE_PER_BYTE``), at most 100
    (and 100 where the op direction has no minimum bytes to keep pace with: a view's VJP)."""
    if instr_per_element <= 0 or bytes_per_element <= 0:
        return 100.0
    return min(100.0, 100.0 * ISSUE_PER_BYTE * bytes_per_element / instr_per_element)


@functools.cache
def _ptxas() -> str:
    import triton

    knobs = triton.knobs.nvidia
    path = getattr(getattr(knobs, "ptxas_blackwell", None), "path", None) or knobs.ptxas.path
    return path


def ptxas_report(ptx: str) -> dict:
    """Registers and spill bytes from ``ptxas -v`` for sm_90a (the PTX Triton emitted)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "k.ptx")
        Path(src).write_text(ptx)
        proc = subprocess.run([_ptxas(), "-v", "--gpu-name", "sm_90a", src, "-o", os.path.join(tmp, "k.cubin")],
                              capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    if proc.returncode:
        raise RuntimeError(f"ptxas failed: {log[-2000:]}")
    regs = re.search(r"Used (\d+) registers", log)
    spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    return {"registers": int(regs.group(1)) if regs else 0,
            "spill_bytes": int(spills.group(1)) + int(spills.group(2)) if spills else 0}


def _config(kwargs, metadata) -> str:
    parts = [f"{k}={getattr(v, 'name', v)}" for k, v in sorted(kwargs.items())
             if k.isupper() and not isinstance(v, (list, tuple))]
    return ",".join(parts + [f"num_warps={metadata.num_warps}", f"num_stages={metadata.num_stages}"])


def _programs(grid, kwargs) -> int:
    if callable(grid):
        grid = grid(kwargs)
    n = 1
    for g in grid:
        n *= int(g)
    return n


def kernel_row(kernel, grid, kwargs, compiled, bytes_per_element: float = 0.0) -> dict:
    ptx = compiled.asm["ptx"]
    meta = compiled.metadata
    sass = sass_report(compiled.asm["cubin"])
    tile = 1
    for name, value in kwargs.items():
        if name.startswith("BLOCK") and isinstance(value, int) and not isinstance(value, bool):
            tile *= value
    row = {"kernel": getattr(kernel, "__name__", None) or kernel.fn.__name__, "config": _config(kwargs, meta),
           **ptxas_report(ptx), "smem_bytes": int(meta.shared), "num_warps": int(meta.num_warps),
           "programs": _programs(grid, kwargs), **access_bits(ptx),
           "wgmma": int("wgmma.mma_async" in ptx), "tma": int("cp.async.bulk.tensor" in ptx)}
    row["ctas_per_sm"] = ctas_per_sm(row["registers"], row["num_warps"], row["smem_bytes"])
    row["waves"] = row["programs"] / (SMS * row["ctas_per_sm"]) if row["ctas_per_sm"] else float("inf")
    row["wave_efficiency"] = row["waves"] / math.ceil(row["waves"]) if 0 < row["waves"] < float("inf") else 0.0
    row.update(sass)
    row["instr_per_element"] = sass["instructions"] * 32 * row["num_warps"] / tile
    row["issue_pct"] = 0.0 if row["wgmma"] else issue_pct(row["instr_per_element"], bytes_per_element)
    return row


@contextlib.contextmanager
def _values_unused():
    """Nothing runs under the compile-only backend, so input values never matter: draw the
    bench-sized samples (up to 2^27 elements) as uninitialized memory instead of random numbers
    (seconds per op otherwise). Shapes, dtypes and strides stay the samples' own."""
    import torch

    def empty(*size, generator=None, dtype=None, **kw):
        # float32 where the sample asked for float64 (to round to the op's dtype later): half the
        # memory to touch, and the converted tensors' layouts are the same
        return torch.empty(*size, dtype=torch.float32 if dtype in (None, torch.float64) else dtype, **kw)

    def empty_int(low, high=None, size=None, generator=None, **kw):
        return torch.zeros(size if size is not None else high, dtype=kw.pop("dtype", torch.int64), **kw)

    saved = torch.randn, torch.rand, torch.randint, torch.poisson
    torch.randn, torch.rand, torch.randint = empty, empty, empty_int
    torch.poisson = lambda rates, generator=None: torch.empty_like(rates)
    try:
        yield
    finally:
        torch.randn, torch.rand, torch.randint, torch.poisson = saved


def collect(names=None, dtypes=("bfloat16",), shapes=None) -> list[dict]:
    """Rows for every launch of every op's forward and VJP at its quick GPU bench shape (or at
    each of ``shapes``, e.g. a sweep's rows x hidden). Needs the compile-only backend (see ``run``)."""
    import torch

    import triton_ops
    from triton_ops import runtime

    from . import cases

    assert runtime.backend() == "compile-only", runtime.backend()
    launches = []
    plan_call = runtime.LaunchPlan.__call__

    def recording_call(plan, **values):
        # Every library launch goes through a cached LaunchPlan; under the compile-only backend
        # its kernel is compiled on the first call per specialization. warmup() with the same
        # arguments returns that compiled kernel from Triton's cache (no second compile).
        plan_call(plan, **values)
        kwargs = {**plan.fixed, **values, **plan.options}
        compiled = plan.kernel.warmup(grid=plan.grid, **kwargs)
        launches.append((plan.kernel, plan.grid, kwargs, compiled))

    rows = []
    runtime.LaunchPlan.__call__ = recording_call
    try:
        for name in names or sorted(n for n in triton_ops.registry if n != "identity"):
            spec = triton_ops.registry[name]
            for shape, dtype_name in [(s, d) for s in shapes or [cases.quick_shape(spec, gpu=True)] for d in dtypes]:
                dtype = getattr(torch, dtype_name)
                with _values_unused():
                    # checked as every entry point checks them (defaults resolved: rms_norm's eps=None)
                    args = spec.check(*cases.make_args(spec, shape, dtype, "cpu"))
                needs = spec.default_needs(args)
                elements = max(t.numel() for t in args if isinstance(t, torch.Tensor))
                min_bytes = dict(zip(("forward", "backward"), spec.min_bytes(*args)))
                for direction in ("forward", "backward"):
                    launches.clear()
                    if direction == "forward":
                        out, *saved = spec.forward_saved(*args) if spec.n_saved else (spec.forward(*args),)
                    else:
                        kw = {"saved": saved} if spec.n_saved else {}
                        spec.vjp(*args, torch.empty(out.shape, dtype=out.dtype), needs=needs, **kw)
                    same = {}  # a launch repeated with one configuration and grid (a chunked op): one row
                    for kernel, grid, kwargs, compiled in launches:
                        row = kernel_row(kernel, grid, kwargs, compiled, min_bytes[direction] / max(1, elements))
                        key = (row["kernel"], row["config"], row["programs"])
                        if key in same:
                            same[key]["launches"] += 1
                            continue
                        same[key] = {"op": name, "direction": direction, "dtype": dtype_name,
                                     "shape": cases.shape_label(shape), "launches": 1, **row}
                        rows.append(same[key])
                print(f"compiled {name}", file=sys.stderr, flush=True)
    finally:
        runtime.LaunchPlan.__call__ = plan_call
    return rows


def write_csv(rows, out) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows({k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows)


def read_csv(path) -> list[dict]:
    floats = {"waves", "wave_efficiency", "instr_per_element", "issue_pct"}
    ints = set(COLUMNS) - {"op", "direction", "dtype", "shape", "kernel", "config"} - floats
    rows = []
    for r in csv.DictReader(open(path)):
        rows.append({k: int(v) if k in ints else float(v) if k in floats else v for k, v in r.items()})
    return rows


def run(out, names=None, dtypes=("bfloat16",), timeout=1200, shapes=None) -> list[dict]:
    """Write the report to ``out`` from a compile-only subprocess; return its rows."""
    env = dict(os.environ, TRITON_OPS_COMPILE_ONLY="1",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]))
    env.pop("TRITON_INTERPRET", None)
    cmd = [sys.executable, "-m", "bench.static", "--out", str(out), "--dtypes", *dtypes]
    if names:
        cmd += ["--ops", *names]
    if shapes:
        cmd += ["--shapes", *("x".join(map(str, s)) for s in shapes)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode:
        raise RuntimeError(f"bench.static failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return read_csv(out)


def summary(rows) -> str:
    head = f"{'op':<24}{'dir':<9}{'kernel':<26}{'regs':>5}{'spill':>6}{'smem':>7}{'warps':>6}{'cta/SM':>7}" \
           f"{'programs':>9}{'waves':>8}{'w.eff':>6}{'ld':>5}{'st':>5}{'min ld':>7}{'wgmma':>6}{'ins/el':>7}{'issue%':>7}{'infl.B':>7}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['op']:<24}{r['direction']:<9}{r['kernel']:<26}{r['registers']:>5}{r['spill_bytes']:>6}"
                     f"{r['smem_bytes']:>7}{r['num_warps']:>6}{r['ctas_per_sm']:>7}{r['programs']:>9}"
                     f"{r['waves']:>8.2f}{r['wave_efficiency']:>6.2f}{r['load_bits']:>5}{r['store_bits']:>5}"
                     f"{r['min_load_bits']:>7}{r['wgmma']:>6}{r['instr_per_element']:>7.1f}{r['issue_pct']:>7.0f}"
                     f"{r['inflight_bytes']:>7}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.static", description=__doc__.split("\n")[0])
    p.add_argument("--out", default="out/static.csv")
    p.add_argument("--ops", nargs="+", help="default: every registered op but identity")
    p.add_argument("--dtypes", nargs="+", default=["bfloat16"])
    p.add_argument("--shapes", nargs="+", help="e.g. 16384x16384 (default: each op's quick bench shape)")
    args = p.parse_args(argv)
    shapes = [tuple(int(n) for n in s.split("x")) for s in args.shapes] if args.shapes else None
    if os.environ.get("TRITON_OPS_COMPILE_ONLY") != "1":
        rows = run(args.out, args.ops, tuple(args.dtypes), shapes=shapes)
    else:
        rows = collect(args.ops, tuple(args.dtypes), shapes)
        write_csv(rows, args.out)
    print(summary(rows))
    print(f"\n{len(rows)} rows -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
