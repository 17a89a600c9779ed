"""A small GPT-style causal language model on triton_ops (embedding, RMSNorm, causal attention
with softmax, a SwiGLU MLP, an untied LM head), for the training, compile and FSDP2 tests."""
from __future__ import annotations

import torch

import triton_ops
from triton_ops import nn as tnn


class Block(torch.nn.Module):
    def __init__(self, d, heads, hidden):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = tnn.RMSNorm(d), tnn.RMSNorm(d)
        self.qkv, self.proj = tnn.Linear(d, 3 * d, bias=False), tnn.Linear(d, d, bias=False)
        self.gate, self.up, self.down = tnn.Linear(d, hidden, bias=False), tnn.Linear(d, hidden, bias=False), \
            tnn.Linear(hidden, d, bias=False)

    def attention(self, x):
        B, T, d = x.shape
        h = self.heads
        q, k, v = self.qkv(x).view(B, T, 3, h, d // h).permute(2, 0, 3, 1, 4).reshape(3, B * h, T, d // h).unbind(0)
        scores = triton_ops.matmul(q, k.transpose(1, 2)) * (d // h) ** -0.5
        causal = torch.full((T, T), float("-inf"), device=x.device).triu(1)
        att = triton_ops.softmax(scores + causal, -1)
        out = triton_ops.matmul(att, v).view(B, h, T, d // h).transpose(1, 2).reshape(B, T, d)
        return self.proj(out)

    def forward(self, x):
        x = x + self.attention(self.norm1(x))
        y = self.norm2(x)
        return x + self.down(triton_ops.swiglu(self.gate(y), self.up(y)))


class GPT(torch.nn.Module):
    def __init__(self, vocab=64, d=16, heads=2, layers=2, hidden=32):
        super().__init__()
        self.embed = tnn.Embedding(vocab, d)
        self.blocks = torch.nn.ModuleList(Block(d, heads, hidden) for _ in range(layers))
        self.norm = tnn.RMSNorm(d)
        self.lm_head = torch.nn.Linear(d, vocab, bias=False)

    def hidden_states(self, idx):
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, idx, targets=None):
        logits = self.lm_head(self.hidden_states(idx))
        loss = None
        if targets is not None:
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss


def make_model(dtype=torch.float64, device="cpu", **kw):
    torch.manual_seed(0)
    return GPT(**kw).to(device, dtype)


def batch(B=4, T=8, vocab=64, device="cpu"):
    gen = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, vocab, (B, T + 1), generator=gen).to(device)
    return tokens[:, :-1], tokens[:, 1:]
