"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import time

import torch


def matmul_peak(seconds: float = 1.0, size: int = 1024) -> float:
    """FLOP/s of a large square fp32 matmul on this machine: the practical ceiling ratios refer to."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        runs += 1
    return 2 * size**3 * runs / (time.perf_counter() - start)
