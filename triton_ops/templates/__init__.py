"""Kernel templates: ``@triton.jit`` device functions (plain functions under the interpreter,
see ``tiles.helper``) that hold a kernel's whole body. ``fwd/`` and ``bwd/`` define their own thin
``@triton.jit`` entry points around them, so one template serves a forward and a VJP kernel
without either folder importing the other and without re-jitted copies."""
