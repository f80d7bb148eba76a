"""Helpers for testing code built on tinygrad_edu.

``tinygrad_edu.testing.strategies`` holds Hypothesis strategies (shapes, broadcastable shapes,
matmul shapes, arrays and tensors with per-op safe value domains). It is not imported here, so
``import tinygrad_edu.testing`` works without Hypothesis installed.
"""
