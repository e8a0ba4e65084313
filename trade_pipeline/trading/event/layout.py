"""Array layouts of the engine state: one place for every column index and code.

The engine keeps its state in a handful of flat numpy arrays (a tuple the compiled functions
take as one argument), so numba can compile and cache it and a run can stop and resume at any
event (paper trading feeds it message by message).
"""

import numpy as np

INVALID_MIN = np.iinfo(np.int64).min  # no best bid (hftbacktest's INVALID_MIN)
INVALID_MAX = np.iinfo(np.int64).max  # no best ask; also "never" as a time
NEVER = INVALID_MAX

# ---- sides, order types, statuses (hftbacktest's values where it has them) -----------------
BUY = 1
SELL = -1
LIMIT = 0
MARKET = 1
GTC = 0
GTX = 1  # post-only: expires instead of taking liquidity

ST_NONE = 0
ST_NEW = 1  # resting on the exchange
ST_EXPIRED = 2  # post-only that would cross, or a market order's unfilled rest
ST_FILLED = 3
ST_CANCELED = 4
ST_PARTIAL = 5  # partially filled and still resting
ST_REJECTED = 6  # a cancel/replace that found no live order

REQ_NONE = 0
REQ_NEW = 1
REQ_CANCEL = 2
REQ_REPLACE = 3

# ---- counters and scalars: cnt (int64) ------------------------------------------------------
C_XROW = 0  # next event row for the exchange side
C_LROW = 1  # next event row for the local side
C_NEV = 2  # events available (paper trading appends)
C_NOW = 3  # local time of the last processed intent (ns)
C_XNOW = 4  # exchange time of the last processed intent (ns)
C_RQ_HEAD = 5  # request bus (local -> exchange): ring head / tail / last timestamp
C_RQ_TAIL = 6
C_RQ_LAST = 7
C_RS_HEAD = 8  # response bus (exchange -> local)
C_RS_TAIL = 9
C_RS_LAST = 10
C_NFILL = 11  # fills logged
C_NLOG = 12  # order log rows
C_NREST = 13  # orders resting on the exchange (entries of `rest`)
C_HIGH = 14  # slots ever used (high-water mark)
C_NFREE = 15  # entries of the free-slot stack (in `rest`'s second row)
C_LAST_LOCAL_TS = 16  # local_ts of the last event appended (paper bound)
C_LAST_EXCH_TS = 17  # exch_ts of the last event appended
C_FINISHED = 18  # 1: no more events will be appended
C_ERRORS = 19  # rejected local requests (unknown id, duplicate id, request in flight)
C_XEVENTS = 20  # events processed on the exchange side
C_LEVENTS = 21  # events processed on the local side
C_LAST_FEED_LAT = 22  # local_ts - exch_ts of the last local event
NC = 24

# ---- parameters: prm (float64) -------------------------------------------------------------
P_TICK = 0
P_LOT = 1
P_MAKER_FEE = 2
P_TAKER_FEE = 3
P_ENTRY_NS = 4  # constant latencies (latency kind 0)
P_RESP_NS = 5
P_LAT_KIND = 6  # 0 constant, 1 table (interpolated, hftbacktest's IntpOrderLatency)
P_QUEUE = 7  # Q_* below
P_QUEUE_N = 8  # exponent of the power probability
NP = 10

Q_RISK_AVERSE = 0
Q_PROB_POWER = 1
Q_PROB_LOG = 2

# ---- depth meta: int64 ---------------------------------------------------------------------
D_LO = 0  # tick of index 0 of the level arrays
D_N = 1
D_BEST_BID = 2
D_BEST_ASK = 3
D_LOW_BID = 4  # lowest bid tick stored (hftbacktest's bound for scans)
D_HIGH_ASK = 5
# Bounds of every tick stored since the last full clear (what a full clear must zero; the
# two above are hftbacktest's scan bounds, which it resets while stale levels may remain).
D_TOP_BID = 6
D_FLOOR_BID = 7
D_BOTTOM_ASK = 8
D_CEIL_ASK = 9
NDM = 10

# ---- order slots: oi (int64), of (float64) -------------------------------------------------
OI_ID = 0
OI_SIDE = 1
OI_TYPE = 2
OI_TIF = 3
OI_TICK = 4  # price tick on the exchange
OI_XSTATUS = 5
OI_LSTATUS = 6  # as the strategy knows it
OI_LREQ = 7  # request in flight (REQ_*), as the strategy knows it
OI_LTICK = 8  # price tick as the strategy last requested / learned
OI_INFLIGHT = 9  # requests on the way to the exchange (for reports)
OI_USED = 10
OI_LOG = 11  # row in the order log
OI_XRESTING = 12  # 1 while in `rest`
OI_GEN = 13  # bumped each time the slot is reused: messages about an earlier order are stale
NOI = 14

OF_QTY = 0  # exchange: the order's quantity (a replace sets it to the new leaves)
OF_LEAVES = 1  # exchange: unfilled
OF_FRONT = 2  # queue ahead of us at our price (queue model state)
OF_CUM = 3  # traded at our price since the last depth update (probabilistic model)
OF_LQTY = 4  # local view
OF_LLEAVES = 5
NOF = 6

# ---- buses: request rq (int64 + float64 column), response rs -------------------------------
RQ_TS = 0  # exchange receive time
RQ_SLOT = 1
RQ_KIND = 2
RQ_TICK = 3
RQ_LOCAL_TS = 4
RQ_GEN = 5
NRQ = 6
# rqf[:, 0] = qty

RS_TS = 0  # local receive time
RS_SLOT = 1
RS_STATUS = 2
RS_TICK = 3
RS_KIND = 4  # the request answered (REQ_*), or REQ_NONE for a fill of a resting order
RS_FILL_FROM = 5  # fills delivered by this response: [from, to)
RS_FILL_TO = 6
RS_REJECTED = 7
RS_GEN = 8
NRS = 9
# rsf[:, 0] = leaves, rsf[:, 1] = qty

# ---- fills log: fi (int64), ff (float64) ---------------------------------------------------
FI_ID = 0
FI_SIDE = 1
FI_MAKER = 2
FI_EXCH_TS = 3
FI_LOCAL_TS = 4  # when the strategy learns of it (NEVER until the response arrives)
FI_TICK = 5
FI_LOG = 6
NFI = 8
FF_QTY = 0
FF_PRICE = 1
FF_FEE = 2
FF_LEAVES = 3
FF_MID = 4  # exchange-side mid at the fill (markouts start here)
NFF = 6

# ---- order log: one row per order: ol (int64), olf (float64) --------------------------------
OL_ID = 0
OL_SIDE = 1
OL_TYPE = 2
OL_TIF = 3
OL_SUBMIT_TS = 4  # local time of the request
OL_ACK_TS = 5  # exchange time it was accepted (NEVER if it never reached the exchange)
OL_END_TS = 6  # exchange time it left the book (filled, cancelled, expired); NEVER if resting
OL_STATUS = 7  # final exchange status (ST_NEW/ST_PARTIAL while still resting)
OL_TICK = 8  # price tick at entry
OL_REPLACES = 9
OL_FIRST_FILL_TS = 10
OL_NFILLS = 11
NOL = 12
OLF_QTY = 0
OLF_FILLED = 1
OLF_QUEUE_AT_ENTRY = 2  # queue ahead when it started resting
NOLF = 4

# ---- accounting scalars (exchange-side truth and the local view): acc (float64) -------------
A_XPOS = 0
A_LPOS = 1
A_LFEES = 2  # fees the strategy knows of
A_XFEES = 3
# Public trades (and touch depletions) the strategy saw since it last cleared them: the
# highest price a taker bought at, the lowest one sold at (hftbacktest's `last_trades`,
# reduced to what arrival-depth estimates need), and the same for best levels taken out.
A_LT_BUY = 4
A_LT_SELL = 5
A_LT_N = 6
A_TOUCH_BUY = 7  # highest best ask that was removed (the ask moved up)
A_TOUCH_SELL = 8  # lowest best bid that was removed (the bid moved down)
NA = 10

# ---- run codes -------------------------------------------------------------------------------
RUN_DONE = 0  # reached the requested time
RUN_NEED_SPACE = 1  # a log or a bus is nearly full: grow and call again
RUN_NEED_DATA = 2  # the next intent may depend on events not appended yet
RUN_END = 3  # no more events and nothing in flight
