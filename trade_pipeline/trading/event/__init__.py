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
- `exchange`: matching on the exchange side (limit, post-only, market, cancel, replace).
- `local`: the strategy side (order requests, responses, position).
- `loop`: the merged event loop over the four time-ordered queues.
- `state`: allocation and growth of the state arrays; `engine.EventEngine`, the Python API.
- `driver`: strategy wake-ups, risk halts and fills accounting, shared by the backtest and
  paper trading (a run fed in pieces equals the run fed at once).
"""
