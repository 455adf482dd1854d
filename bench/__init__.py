"""Throughput benchmarks of the sync server (`python -m bench`, `make bench`)."""
