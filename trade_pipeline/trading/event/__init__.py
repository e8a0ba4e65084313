"""The event-level backtest: book changes and trades in order of receipt, at exchange times.

Two views of one market, as in hftbacktest: the exchange side applies every event at its
exchange time (`exch_ts`) and matches our orders against that book; the local side (the
strategy) sees the same events at their receive time (`local_ts`). Orders travel between the
two through an entry latency and their responses (acks, fills, cancels) through a response
latency. The queue ahead of a resting order moves by trades at its price and by the level
shrinking (the queue models of hftbacktest: risk-averse, or probabilistic).

Modules, bottom to top:
- `layout`: array layouts of the engine state (numba-friendly flat arrays, no objects).
- `depth`: the L2 book on a tick grid (hftbacktest's HashMapMarketDepth rules).
- `queue`: queue-position models.
- `latency`: order-entry and response latency (constant, or interpolated from a table).
- `buses`: the two order buses (requests to the exchange, responses to us).
- `exchange`: matching on the exchange side (limit, post-only, market, cancel, replace).
- `local`: the strategy side (order requests, responses, position).
- `loop`: the merged event loop over the four time-ordered queues.
- `state`: allocation and growth of the state arrays.
- `view`: what a compiled strategy may read and do.
- `engine.EventEngine`: the Python API (scripted orders, tests, paper trading).

Above this package: `trading/event_driver.py` (strategy wake-ups, fills booked through the
shared accounting, the drawdown stop), `event_backtest.py` (`EventRun`, batch or fed live),
the strategies (`event_taker.py`, `maker.py`, `market_maker.py`), `event_report.py` and
`event_service.py` (CLI and asset).
"""
