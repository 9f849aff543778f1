"""Benchmarks: each prints hygge's figures next to a baseline measured in the same run."""
