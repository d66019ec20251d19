"""Checking our implementation against reference tensors computed by the official code."""

from .report import ReferenceCheck, ReferenceError, compare_outputs, load_reference

__all__ = ["ReferenceCheck", "ReferenceError", "compare_outputs", "load_reference"]
