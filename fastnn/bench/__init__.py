"""Epoch-time benchmarks of the backends.

`python -m fastnn.bench` (cli.py) times them side by side in one process and prints the
README's table; benchmarks/ times the same workloads (workloads.py) with pytest-benchmark.
Pieces: workloads (what is timed), timing (how), peers (other libraries), startup (a fresh
train process), machine (what it ran on), report (markdown, JSON, PNG).
"""
