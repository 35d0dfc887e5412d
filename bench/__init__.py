"""Benchmarks of the exchange core.

- ``bench.stream``: the deterministic standard order-flow stream (``standard_stream``).
- ``bench.reference``: a minimal SortedDict + deque FIFO book, the in-process baseline.
- ``bench.engine``: the runner, ``python -m bench.engine [--n N] [--repeats R] [--json]``.

See ``bench/RESULTS.md`` for the workload definition and measured figures.
"""
