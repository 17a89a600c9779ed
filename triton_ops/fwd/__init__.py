"""Forward kernels: thin ``@triton.jit`` entry points, one module per op family."""
