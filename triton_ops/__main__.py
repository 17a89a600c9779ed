"""``python -m triton_ops {list,check,demo,tune}``."""
from __future__ import annotations

import argparse
import sys

import triton_ops


def cmd_list(args) -> int:
    print(f"backend: {triton_ops.backend()}   ops: {len(triton_ops.registry)}")
    print(f"{'op':<26} {'family':<10} signature")
    for name, spec in sorted(triton_ops.registry.items(), key=lambda kv: (kv[1].family, kv[0])):
        print(f"{name:<26} {spec.family:<10} {name}{spec.signature}")
    return 0


def cmd_check(args) -> int:
    """Every registered op, forward and VJP, against its float64 reference on a small input:
    through the raw launchers in float64, or (``--warm``) through the public function with
    autograd in float32, three calls each (recorded, then replayed)."""
    from .replay import replay_count
    from .selfcheck import check_op, check_public

    device = triton_ops.runtime.default_device()
    failures = 0
    names = args.ops or sorted(triton_ops.registry)
    for name in names:
        spec = triton_ops.registry[name]
        try:
            if args.warm:
                replays = replay_count()
                err = check_public(spec, device)
                # float32 math against float64: a few ulps of float32 per reduction step
                ok, line = err < 1e-3, f"max |err| / max |ref| {err:.2e}   replayed calls {replay_count() - replays}"
            else:
                err_fwd, err_bwd = check_op(spec, device)
                ok, line = err_fwd < 1e-4 and err_bwd < 1e-4, f"max |fwd err| {err_fwd:.2e}   max |grad err| {err_bwd:.2e}"
        except Exception as e:  # a first run on a new Triton or GPU: report every op, not the first failure
            ok, line = False, f"{type(e).__name__}: {e}".splitlines()[0][:200]
        failures += not ok
        print(f"{'ok ' if ok else 'BAD'} {name:<26} {line}", flush=True)
    print(f"{len(names) - failures} of {len(names)} ops match their float64 references")
    return 1 if failures else 0


def cmd_demo(args) -> int:
    from .demo import main as demo_main

    return demo_main(args)


def cmd_tune(args) -> int:
    from .autotune import main as tune_main

    return tune_main(args)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m triton_ops")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the registered ops").set_defaults(func=cmd_list)
    p = sub.add_parser("check", help="check ops against their float64 references")
    p.add_argument("ops", nargs="*")
    p.add_argument("--warm", action="store_true",
                   help="through the public functions with autograd, float32, three calls each (replays)")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("demo", help="the main job: train a small classifier with triton_ops")
    p.add_argument("--epochs", type=int, default=None)
    p.set_defaults(func=cmd_demo)
    try:
        from .autotune import add_arguments
    except ImportError:  # pragma: no cover
        add_arguments = None
    if add_arguments is not None:
        p = sub.add_parser("tune", help="autotune sweeps over kernel configs")
        add_arguments(p)
        p.set_defaults(func=cmd_tune)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
