import os
import sys

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

def pytest_sessionfinish(session, exitstatus):
    # A run that collected nothing is a broken run, not a pass: turn pytest's exit 5 into 1.
    if exitstatus == 5:
        session.exitstatus = 1
