"""The main job (``python -m triton_ops demo``)."""
from __future__ import annotations

import time

import triton_ops


def main(args) -> int:
    from .__main__ import cmd_check, cmd_list

    start = time.time()
    cmd_list(args)
    print()
    args.ops = None
    rc = cmd_check(args)
    print(f"done in {time.time() - start:.1f}s on backend {triton_ops.backend()}")
    return rc
