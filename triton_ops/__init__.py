"""triton_ops: fused Triton kernels (forward + VJP) for PyTorch training.

Every op is an ``OpSpec`` in ``triton_ops.registry``; the functions below are their public,
autograd-capable faces. See SPEC.md for the contract and docs/design.md for the architecture.
"""
import importlib

from .runtime import (  # noqa: F401  (the backend is decided before any kernel module loads)
    DomainError, backend, domain_checks, set_domain_checks,
)
from .spec import OpSpec, registry  # noqa: F401
from .ops.unary import (  # noqa: F401
    elu, gelu, identity, leaky_relu, log, reciprocal, safe_log, safe_reciprocal, smooth_abs, sqrt, unary_op,
)
from .ops.binary import Broadcast, add, binary_op, div, mul, safe_div, sub  # noqa: F401
from .ops.loss import (  # noqa: F401
    binary_cross_entropy, cross_entropy, elementwise_loss, hinge_loss, huber_loss, log_cosh_loss, mae_loss, mse_loss,
    poisson_loss,
)
from .ops.cross_entropy import cross_entropy_logits  # noqa: F401
from .ops.cosine import cosine_similarity_loss  # noqa: F401
from .ops.layers import embedding, layer_norm, linear, matmul, one_hot_embedding, transpose  # noqa: F401
from .ops.shape import replicate, sum, sum_to  # noqa: F401,A004
from .ops.llm import linear_cross_entropy, log_softmax, relu, rms_norm, silu, softmax, swiglu  # noqa: F401
from .ops.parity import (  # noqa: F401
    bce_log_clamp, bce_with_logits, gelu_erf, poisson_nll_full, poisson_nll_rate, poisson_nll_rate_full,
)

__version__ = "0.1.0"


def __getattr__(name):
    # triton_ops.patch lives in a top layer built on this package (tests/test_layers_imports.py):
    # it is loaded on first use, never while this package loads
    if name == "patch":
        return importlib.import_module(".patching", __name__).patch
    raise AttributeError(f"module 'triton_ops' has no attribute {name!r}")
