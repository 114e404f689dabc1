"""Benchmarks: one module per question, each run as `python3 -m bench.<name>`, raw figures in bench/results/."""

import omp_wait  # noqa: F401  (first: OpenMP's wait policy, before a benchmark imports torch)
