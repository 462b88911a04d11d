"""Naive pure-Python references for every kernel: slow, obvious, and the ground truth.

Benchmarks reuse them as the 'naive' baseline.
"""
