"""Benchmarks of shelve-lifecycle: partial vs. full offload, mass unshelve,
scheduler scale, storage efficiency. See ``tools/bench/run.py`` and
``doc/benchmarks/``."""
