"""Differentiable operations, one module per family."""
