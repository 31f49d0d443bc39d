"""chatire load generator: fanout, max, idle and ingest scenarios; writes docs/benchmarks.md."""
