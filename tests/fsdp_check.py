"""Two gloo processes train one FSDP2 (``fully_shard``) step of the GPT-style model of tests/gpt.py
(triton_ops embedding, RMSNorm, softmax, SwiGLU, linear_cross_entropy head) on half a batch each;
the result must equal one process's step on the whole batch. Run by tests/test_llm.py."""
import os
import sys

import torch
import torch.distributed as dist

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import triton_ops  # noqa: E402
from triton_ops import nn as tnn  # noqa: E402
from ddp_check import join_group, on_two_processes  # noqa: E402
from gpt import batch, make_model  # noqa: E402


def step(model, idx, targets):
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    _, loss = model(idx, targets)
    loss.backward()
    opt.step()
    return loss.detach()


def worker(rank, world, port, path):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    torch.set_num_threads(1)
    join_group(rank, world, port)
    mesh = init_device_mesh("cpu", (world,))
    model = tnn.fuse_lm_head_loss(make_model())
    for block in model.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)  # the root group holds the embedding, the final norm and the head
    idx, targets = batch()
    half = len(idx) // world
    loss = step(model, idx[rank * half:(rank + 1) * half], targets[rank * half:(rank + 1) * half])
    dist.all_reduce(loss)
    state = {k: v.full_tensor() for k, v in model.state_dict().items()}
    if rank == 0:
        torch.save((state, loss / world), path)
    dist.destroy_process_group()


def main():
    assert triton_ops.backend() in ("interpreter", "cuda")
    fsdp_state, fsdp_loss = on_two_processes(worker, "fsdp.pt")
    model = tnn.fuse_lm_head_loss(make_model())
    loss = step(model, *batch())
    single = model.state_dict()
    assert fsdp_state.keys() == single.keys()
    worst = max((fsdp_state[k] - single[k]).abs().max().item() for k in single)
    moved = max((single[k] - v).abs().max().item() for k, v in make_model().state_dict().items())
    print(f"loss {loss.item():.6f} (2-process mean {fsdp_loss.item():.6f}); largest parameter change {moved:.2e}; "
          f"largest difference, 2-process FSDP2 vs 1 process: {worst:.2e}")
    assert moved > 1e-3  # the step did change the parameters
    assert abs(fsdp_loss.item() - loss.item()) < 1e-10 and worst < 1e-10, worst
    print("fsdp ok")


if __name__ == "__main__":
    main()
