"""Benchmark harness: python -m experiments.benchmark.main (see README.md)."""
