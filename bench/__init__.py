"""Benchmarks: one module per question, each run as `python3 -m bench.<name>`, raw figures in bench/results/."""
