"""Two gloo processes train one DistributedDataParallel step of a triton_ops model on half a batch
each; the result must equal one process's step on the whole batch. Run by tests/test_training.py."""
import os
import socket
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import triton_ops  # noqa: E402
from triton_ops import nn as tnn  # noqa: E402


def make_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(tnn.LayerNorm(12), tnn.Linear(12, 16, activation="gelu"), tnn.Linear(16, 4))


def data():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(8, 12, generator=gen), torch.randint(0, 4, (8,), generator=gen)


def step(model, x, y):
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loss = tnn.CrossEntropyLoss()(model(x), y)
    loss.backward()
    opt.step()
    return model


def join_group(rank, world, port):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)


def on_two_processes(worker, filename):
    """Run ``worker(rank, 2, port, path)`` in two processes that meet on a free local port;
    return what rank 0 saved at ``path``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, filename)
        mp.spawn(worker, args=(2, port, path), nprocs=2, join=True)
        return torch.load(path)


def worker(rank, world, port, path):
    join_group(rank, world, port)
    model = torch.nn.parallel.DistributedDataParallel(make_model())
    x, y = data()
    half = len(x) // world
    step(model, x[rank * half:(rank + 1) * half], y[rank * half:(rank + 1) * half])
    if rank == 0:
        torch.save(model.module.state_dict(), path)
    dist.destroy_process_group()


def main():
    assert triton_ops.backend() in ("interpreter", "cuda")
    ddp_state = on_two_processes(worker, "ddp.pt")
    single = step(make_model(), *data()).state_dict()
    worst = max((ddp_state[k] - single[k]).abs().max().item() for k in single)
    print(f"largest parameter difference, 2-process DDP vs 1 process: {worst:.2e}")
    assert worst < 1e-6, worst
    print("ddp ok")


if __name__ == "__main__":
    main()
