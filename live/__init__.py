"""The live exchange: the simulator's exchange core served over WebSockets.

Processes, each one command (all on 127.0.0.1 by default):

- ``python -m live.server``: the exchange (matching, positions, risk, liquidation, the order
  gateway, the journal and the CSV export); trading on ``/``, market data on ``/feed``.
- ``python -m live.relay``: a stateless market-data relay that subscribes to ``/feed`` and
  fans it out to any number of read-only subscribers.

Modules: ``protocol`` (every message, schema-first; documented in ``docs/API_SPEC.md``),
``config`` (frozen config, JSON), ``core`` (the venue without I/O), ``journal`` (durability),
``csv_sink`` (trades.csv/performance.csv), ``marketdata`` (bounded fan-out, L2 books),
``server``, ``relay``, ``client`` (asyncio client library for bots, monitors and tests).
"""
