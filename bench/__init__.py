"""Kernel microbenchmarks of triton_ops against PyTorch eager and torch.compile: ``python -m bench``."""
