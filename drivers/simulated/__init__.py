"""Simulated devices for `lintel demo`, the tests and the benchmarks."""
