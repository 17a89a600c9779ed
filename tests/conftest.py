import os
import sys
import tempfile

# torch.compile's caches key a graph by its ops, not by what an opaque custom op does: a cache
# left by another checkout (an op whose saved outputs changed) would answer this one's tests.
# Each test session compiles into its own directory.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="triton_ops-inductor-"))

import triton_ops  # noqa: F401  (first: it picks the backend before triton loads)
import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
# Tiny tensors, two pytest workers on two cores: extra intra-op threads only contend.
torch.set_num_threads(1)

@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield

@pytest.fixture
def store(tmp_path, monkeypatch):
    """An empty tuning store of this test's own (the path), read afresh: no cached entry or plan
    of another store survives into the test or out of it."""
    from triton_ops import runtime, tune

    path = tmp_path / "tuned.json"
    monkeypatch.setenv("TRITON_OPS_TUNE_STORE", str(path))
    tune._cache.clear()
    runtime.clear_plan_caches()
    yield path
    tune._cache.clear()
    runtime.clear_plan_caches()


def pytest_sessionfinish(session, exitstatus):
    # A run that collected nothing is a broken run, not a pass: turn pytest's exit 5 into 1.
    if exitstatus == 5:
        session.exitstatus = 1
