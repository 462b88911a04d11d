"""Kernel tests: exact tables, naive-reference equality, chunk invariance."""
