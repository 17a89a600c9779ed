"""Autotune sweeps over kernel configs and the persistent store of their winners."""
from __future__ import annotations


def lookup(family: str, dtype, shape) -> dict | None:
    return None
