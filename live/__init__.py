"""The live exchange: the simulator's exchange core served over WebSockets.

Processes, each one command (all on 127.0.0.1 by default):

- ``python -m live.server``: the exchange (matching, positions, risk, liquidation, the order
  gateway, the journal and the CSV export); trading on ``/``, market data on ``/feed``.
- ``python -m live.relay``: a stateless market-data relay that subscribes to ``/feed`` and
  fans it out to any number of read-only subscribers.
- ``python -m live.bots --config configs/bots.json``: bots (scripted traders from ``agents``,
  ``module:Class`` plugins, neural policies from a checkpoint), one OS process each.
- ``python -m live.monitor``: a read-only terminal view of books, trades and traders.
- ``python serve.py``: all of the above for a demo; ``python serve.py PART`` starts one part.

Modules: ``protocol`` (every message, schema-first; documented in ``docs/API_SPEC.md``),
``config`` (frozen config, JSON), ``core`` (the venue without I/O), ``journal`` (durability),
``csv_sink`` (trades.csv/performance.csv), ``marketdata`` (bounded fan-out, L2 books),
``server``, ``relay``, ``client`` (asyncio client library for bots, monitors and tests),
``bots``/``live_context``/``policy_bot`` (bots), ``monitor``, ``launch`` (child processes).
A newcomer connecting their own bot starts with ``docs/BOT_INTEGRATION_GUIDE.md``.
"""
