"""Benchmarks: run them as modules, e.g. `python -m bench.ingest_corpus`; results go to BENCHMARKS.md."""
