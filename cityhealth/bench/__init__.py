"""Benchmark implementations behind ``cityhealth bench``."""
