"""Synthetic BTCUSDT order-book stream: the embedded default source (seeded, deterministic).

A queue-reactive model in the spirit of Huang, Lehalle & Rosenbaum (2015), on a 0.1 tick
grid, stepped every 20 ms (Bybit's orderbook.50 push period):

- the best queue of each side receives limit orders at a rate that falls with its size,
  cancellations at a rate proportional to its size, and market orders (heavy-tailed sizes)
  that walk the book when they exceed it;
- when a best queue is depleted, the spread opens; it is closed again by a new queue placed
  next to the opposite best (either side, at random), so the spread is almost always 1 tick
  and the mid moves in the direction of the order flow (OFI and mid change correlate);
- deeper ticks (1..300 ticks behind the best) appear, resize and vanish at random, with an
  occupancy of ~30 % and small heavy-tailed sizes, as in the real captures.

The parameters were fitted by eye to the Bybit BTCUSDT perp captures of July 2025 in
`shared/data/bybit` (spread 1 tick ~99.9 % of pushes, median best size ~10 BTC, median size
at levels 2-10 ~0.01 BTC, ~27 ticks from best to the 10th level, mid changes rare).
`trade_pipeline_tests/market/test_simulator_stats.py` checks these against the real data.

Output: Bybit v5 wire frames (snapshot first, then deltas of the top-50 levels, `u` +1 per
push; steps with no visible change push nothing), each with a simulated receive time.

With `SimulatorConfig(trades=True)` (what the pipeline's simulator source uses) the stream
also carries `publicTrade.<SYMBOL>` pushes consistent with the book: every market order
prints one trade per resting (maker) order it fills, at the price of the level it took, with
the taker's side; the step's book delta then shows the size removed. A level's queue is cut
into maker orders of the limit-order size law (`fill_median`, `fill_sigma`), drawn from a
generator of their own, so the book frames are byte for byte those of `trades=False`.
Trades are executed against the book the client holds (the previous push), so a trade's
price is always a level of that book and its size never exceeds the level's size.
The core is numba-compiled with its own splitmix64 generator, so a seed gives the same
bytes on every run and platform.
"""

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, fields

import numba as nb
import numpy as np

from trade_pipeline.market.bybit_ws import orderbook_topic
from trade_pipeline.settings import SettingsError, check_symbol

TICK = 0.1
LOT = 0.001  # BTCUSDT quantity step
DEPTH = 50
WINDOW = 1 << 14  # ticks held in memory per side (recentred when the price drifts away)
DEEP_RANGE = 300  # deep events happen within this many ticks behind the best
STEP_CAPACITY = 4 * DEPTH + 8  # max level changes one step can publish (both sides)
MAX_JUMP = 2 * DEEP_RANGE  # ticks a requote jump may move the best (60 USD)
# The window is recentred when a best comes this close to an edge: one step's moves (a jump,
# a market order walking at most the book it sees, deep events) can never leave the window.
RECENTRE_MARGIN = 2 * MAX_JUMP + DEEP_RANGE

# Indices of the parameter vector (SimulatorParams.as_array, in field order).
P_LIMIT_RATE = 0
P_LIMIT_MEDIAN = 1
P_LIMIT_SIGMA = 2
P_CANCEL_RATE = 3
P_CANCEL_REF = 4
P_CANCEL_MEDIAN = 5
P_CANCEL_SIGMA = 6
P_MARKET_RATE = 7
P_MARKET_MEDIAN = 8
P_MARKET_SIGMA = 9
P_MARKET_CAP = 10
P_REFILL_PROB = 11
P_REFILL_BIG_PROB = 12
P_REFILL_BIG_MEDIAN = 13
P_REFILL_SMALL_MEDIAN = 14
P_DEEP_RATE = 15
P_DEEP_INSERT_PROB = 16
P_DEEP_INSERT_PROB_NEAR = 17
P_DEEP_CANCEL_PROB = 18
P_DEEP_MEDIAN = 19
P_DEEP_SIGMA = 20
P_JUMP_RATE = 21
P_JUMP_MEAN_TICKS = 22
P_FILL_MEDIAN = 23
P_FILL_SIGMA = 24

# Indices of the int64 state vector.
I_BB, I_BA, I_BASE, I_NPB, I_NPA = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class SimulatorParams:
    """Event rates (per second, per side) and size laws (lognormal median in BTC, sigma)."""

    limit_rate: float = 30.0  # limit orders joining the best queue (x2 at small queues)
    limit_median: float = 0.02
    limit_sigma: float = 1.5
    cancel_rate: float = 30.0  # cancels at the best, per second at queue = cancel_ref
    cancel_ref: float = 10.0
    cancel_median: float = 0.02
    cancel_sigma: float = 1.5
    market_rate: float = 3.0
    market_median: float = 0.02
    market_sigma: float = 1.8
    market_cap: float = 15.0
    refill_prob: float = 0.5  # per step, while the spread is wider than 1 tick
    refill_big_prob: float = 0.5  # a new best queue is a large one with this probability
    refill_big_median: float = 8.0
    refill_small_median: float = 0.05
    deep_rate: float = 100.0  # events on ticks behind the best
    deep_insert_prob: float = 0.3
    deep_insert_prob_near: float = 0.6  # extra insert probability right behind the best
    deep_cancel_prob: float = 0.7
    deep_median: float = 0.02
    deep_sigma: float = 2.2
    # Requotes: the large best queues move together by a few ticks to tens of ticks (how the
    # real captures' mid moves: rare, in jumps of median ~2.6 USD), following the flow.
    jump_rate: float = 0.12
    jump_mean_ticks: float = 20.0
    # Trades: the maker orders a market order fills (sizes of the resting orders it meets;
    # trade statistics are checked against Binance's BTCUSDT trades in
    # test_simulator_stats.py).
    fill_median: float = 0.005
    fill_sigma: float = 2.0

    def as_array(self) -> np.ndarray:
        values = [getattr(self, f.name) for f in fields(self)]
        assert len(values) == P_FILL_SIGMA + 1
        return np.array(values, dtype=np.float64)


@dataclass(frozen=True)
class SimulatorConfig:
    start: dt.datetime  # UTC time of the first push
    duration_s: float = 3600.0
    seed: int = 7
    symbol: str = "BTCUSDT"
    start_price: float = 108_000.0
    step_ms: int = 20
    params: SimulatorParams = field(default_factory=SimulatorParams)
    trades: bool = False  # also emit publicTrade pushes (the book frames stay the same)

    def __post_init__(self) -> None:
        check_symbol(self.symbol)
        if not self.duration_s > 0:
            raise SettingsError(f"duration must be positive, got {self.duration_s}")
        if self.start.tzinfo is None:
            raise SettingsError("start must be timezone-aware (UTC)")
        if not self.start_price > 1000 * TICK:
            raise SettingsError(f"start_price too small: {self.start_price}")
        if self.step_ms <= 0:
            raise SettingsError(f"step_ms must be positive, got {self.step_ms}")

    @property
    def start_ms(self) -> int:
        return round(self.start.timestamp() * 1000)

    @property
    def n_steps(self) -> int:
        return int(self.duration_s * 1000 // self.step_ms)


# ---- random numbers (splitmix64: tiny, fast, reproducible) -----------------------------------

@nb.njit(cache=True, inline="always")
def _next_u64(rng):
    rng[0] += np.uint64(0x9E3779B97F4A7C15)
    z = rng[0]
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@nb.njit(cache=True)
def _uniform(rng):
    return np.float64(_next_u64(rng) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@nb.njit(cache=True)
def _normal(rng):
    u1 = _uniform(rng)
    u2 = _uniform(rng)
    return np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * np.pi * u2)


@nb.njit(cache=True)
def _poisson(rng, lam):
    # Knuth: the rates per 20 ms step are small.
    limit = np.exp(-lam)
    k = 0
    p = _uniform(rng)
    while p > limit:
        k += 1
        p *= _uniform(rng)
    return k


@nb.njit(cache=True)
def _lots(rng, median_btc, sigma):
    lots = np.int64(np.round(median_btc * np.exp(sigma * _normal(rng)) / 0.001))
    return max(lots, np.int64(1))


# ---- the book -------------------------------------------------------------------------------

@nb.njit(cache=True)
def _next_bid(bid, start):
    """Best bid at or below `start` (clamped to the window: never an out-of-range index)."""
    i = min(max(start, 0), bid.shape[0] - 1)
    while i > 0 and bid[i] == 0:
        i -= 1
    return i


@nb.njit(cache=True)
def _next_ask(ask, start):
    """Best ask at or above `start` (clamped to the window)."""
    n = ask.shape[0]
    i = min(max(start, 0), n - 1)
    while i < n - 1 and ask[i] == 0:
        i += 1
    return i


@nb.njit(cache=True)
def _fill_deep(rng, side, lo, hi, prm):
    # the stationary occupancy of the deep insert/cancel process
    occupancy = prm[P_DEEP_INSERT_PROB] / (prm[P_DEEP_INSERT_PROB] + prm[P_DEEP_CANCEL_PROB])
    for i in range(lo, hi):
        if _uniform(rng) < occupancy:
            side[i] = _lots(rng, prm[P_DEEP_MEDIAN], prm[P_DEEP_SIGMA])
        else:
            side[i] = 0


@nb.njit(cache=True)
def _recentre(rng, bid, ask, st, prm):
    """Shift the window so the mid sits in the middle; new ticks get a fresh deep book."""
    w = bid.shape[0]
    shift = (st[I_BB] + st[I_BA]) // 2 - w // 2
    if shift > 0:
        bid[: w - shift] = bid[shift:].copy()
        ask[: w - shift] = ask[shift:].copy()
        bid[w - shift:] = 0
        _fill_deep(rng, ask, w - shift, w, prm)
    elif shift < 0:
        s = -shift
        bid[s:] = bid[: w - s].copy()
        ask[s:] = ask[: w - s].copy()
        ask[:s] = 0
        _fill_deep(rng, bid, 0, s, prm)
    st[I_BB] -= shift
    st[I_BA] -= shift
    st[I_BASE] += shift


MAX_STEP_FILLS = 4 * 15_000  # fills one step may print before the buffer must have room


@nb.njit(cache=True)
def _market(rng, side, best, lots, is_ask, trng, prm, base, tr, trk):
    """A market order eats `lots` from the best of `side` outward; returns the new best.

    Each level taken prints its fills (one per maker order met, sizes from `trng`) into
    tr[0..2] (taker side, absolute tick, lots) at trk[0]; trk[1] counts market orders."""
    i = best
    n = side.shape[0]
    trk[1] += 1
    while lots > 0 and 0 < i < n - 1:
        take = min(lots, side[i])
        side[i] -= take
        lots -= take
        left = take
        while left > 0:
            k = trk[0]
            if k >= tr.shape[1]:
                raise RuntimeError("simulator: trade buffer full")
            fill = min(left, _lots(trng, prm[P_FILL_MEDIAN], prm[P_FILL_SIGMA]))
            tr[0, k] = 1 if is_ask else -1
            tr[1, k] = i + base
            tr[2, k] = fill
            tr[3, k] = trk[1]
            trk[0] = k + 1
            left -= fill
        if side[i] == 0:
            i = _next_ask(side, i + 1) if is_ask else _next_bid(side, i - 1)
    return i


@nb.njit(cache=True)
def _best_queue(rng, side, best, dt, prm):
    """Limit orders and cancellations at the best queue (queue-reactive rates)."""
    q = side[best]
    q_btc = q * 0.001
    n_lim = _poisson(rng, prm[P_LIMIT_RATE] * (0.5 + 1.5 * np.exp(-q_btc / prm[P_CANCEL_REF])) * dt)
    for _ in range(n_lim):
        side[best] += _lots(rng, prm[P_LIMIT_MEDIAN], prm[P_LIMIT_SIGMA])
    n_can = _poisson(rng, prm[P_CANCEL_RATE] * (side[best] * 0.001 / prm[P_CANCEL_REF]) * dt)
    for _ in range(n_can):
        side[best] -= min(side[best], _lots(rng, prm[P_CANCEL_MEDIAN], prm[P_CANCEL_SIGMA]))


@nb.njit(cache=True)
def _deep(rng, side, best, sign, dt, prm):
    n = _poisson(rng, prm[P_DEEP_RATE] * dt)
    w = side.shape[0]
    for _ in range(n):
        d = 1 + np.int64(_uniform(rng) * DEEP_RANGE)
        i = best + sign * d
        if i <= 0 or i >= w - 1:
            continue
        if side[i] == 0:
            p_ins = prm[P_DEEP_INSERT_PROB] + prm[P_DEEP_INSERT_PROB_NEAR] * np.exp(-(d - 1) / 1.5)
            if _uniform(rng) < p_ins:
                side[i] = _lots(rng, prm[P_DEEP_MEDIAN], prm[P_DEEP_SIGMA])
        elif _uniform(rng) < prm[P_DEEP_CANCEL_PROB]:
            side[i] = 0
        else:
            side[i] = _lots(rng, prm[P_DEEP_MEDIAN], prm[P_DEEP_SIGMA])


@nb.njit(cache=True)
def _top(side, best, sign, out_idx, out_lots):
    """Top DEPTH occupied ticks of a side from its best outward; returns the count."""
    n = 0
    i = best
    w = side.shape[0]
    while n < DEPTH and 0 < i < w - 1:
        if side[i] > 0:
            out_idx[n] = i
            out_lots[n] = side[i]
            n += 1
        i += sign
    return n


@nb.njit(cache=True)
def _diff(old_idx, old_lots, n_old, new_idx, new_lots, n_new, sign, base, side_code,
          out_side, out_tick, out_lots, k):
    """Merge two best-first level lists; append (side, tick, lots) changes (lots 0 = delete)."""
    i = 0
    j = 0
    while i < n_old or j < n_new:
        if j >= n_new or (i < n_old and sign * (old_idx[i] - new_idx[j]) < 0):
            out_side[k] = side_code
            out_tick[k] = old_idx[i] + base
            out_lots[k] = 0
            k += 1
            i += 1
        elif i >= n_old or sign * (old_idx[i] - new_idx[j]) > 0:
            out_side[k] = side_code
            out_tick[k] = new_idx[j] + base
            out_lots[k] = new_lots[j]
            k += 1
            j += 1
        else:
            if old_lots[i] != new_lots[j]:
                out_side[k] = side_code
                out_tick[k] = new_idx[j] + base
                out_lots[k] = new_lots[j]
                k += 1
            i += 1
            j += 1
    return k


@nb.njit(cache=True)
def _run(rng, bid, ask, st, pub_idx, pub_lots, prm, dt, n_steps, out_off, out_side, out_tick,
         out_lots, trng, tr, tr_off, trk):
    """Advance up to `n_steps`; record each step's published changes (CSR in out_off) and
    trades (CSR in tr_off). Returns the steps done: fewer when the trade buffer may not hold
    another step's fills (call again for the rest)."""
    new_idx = np.zeros((2, DEPTH), np.int64)
    new_lots = np.zeros((2, DEPTH), np.int64)
    w = bid.shape[0]
    k = 0
    out_off[0] = 0
    trk[0] = 0
    tr_off[0] = 0
    for s in range(n_steps):
        if trk[0] + MAX_STEP_FILLS > tr.shape[1]:
            return s
        bb = st[I_BB]
        ba = st[I_BA]
        base0 = st[I_BASE]
        # market orders: buyers hit the asks, sellers the bids
        for _ in range(_poisson(rng, prm[P_MARKET_RATE] * dt)):
            ba = _market(rng, ask, ba, min(_lots(rng, prm[P_MARKET_MEDIAN], prm[P_MARKET_SIGMA]), np.int64(prm[P_MARKET_CAP] / 0.001)), True, trng, prm, base0, tr, trk)
        for _ in range(_poisson(rng, prm[P_MARKET_RATE] * dt)):
            bb = _market(rng, bid, bb, min(_lots(rng, prm[P_MARKET_MEDIAN], prm[P_MARKET_SIGMA]), np.int64(prm[P_MARKET_CAP] / 0.001)), False, trng, prm, base0, tr, trk)
        tr_off[s + 1] = trk[0]
        # best queues
        if ba - bb == 1:
            _best_queue(rng, bid, bb, dt, prm)
            _best_queue(rng, ask, ba, dt, prm)
            if bid[bb] == 0:
                bb = _next_bid(bid, bb - 1)
            if ask[ba] == 0:
                ba = _next_ask(ask, ba + 1)
        # an open spread is closed by a new queue next to one of the bests
        if ba - bb > 1 and _uniform(rng) < prm[P_REFILL_PROB]:
            big = _uniform(rng) < prm[P_REFILL_BIG_PROB]
            lots = _lots(rng, prm[P_REFILL_BIG_MEDIAN], 1.0) if big else _lots(rng, prm[P_REFILL_SMALL_MEDIAN], 2.0)
            if _uniform(rng) < 0.5:
                bb = ba - 1
                bid[bb] += lots
            else:
                ba = bb + 1
                ask[ba] += lots
        # requote jump: both best queues move by J ticks, the side ahead is cleared
        if _uniform(rng) < prm[P_JUMP_RATE] * dt:
            jump = 1 + np.int64(-np.log(1.0 - _uniform(rng)) * (prm[P_JUMP_MEAN_TICKS] - 1.0))
            # bounded so the book stays inside the window (recentred within RECENTRE_MARGIN)
            jump = min(jump, MAX_JUMP)
            up = _uniform(rng) < 0.5
            old_b = bid[bb]
            old_a = ask[ba]
            if up:
                ask[ba:ba + jump] = 0
                ba = _next_ask(ask, ba + jump)
                bid[bb] = _lots(rng, prm[P_DEEP_MEDIAN], prm[P_DEEP_SIGMA])
                bb = ba - 1
                bid[bb] = max(old_b, _lots(rng, prm[P_REFILL_BIG_MEDIAN], 1.0))
                ask[ba] = max(ask[ba], old_a)
            else:
                bid[max(bb - jump + 1, 0):bb + 1] = 0
                bb = _next_bid(bid, bb - jump)
                ask[ba] = _lots(rng, prm[P_DEEP_MEDIAN], prm[P_DEEP_SIGMA])
                ba = bb + 1
                ask[ba] = max(old_a, _lots(rng, prm[P_REFILL_BIG_MEDIAN], 1.0))
                bid[bb] = max(bid[bb], old_b)
        # deep book
        _deep(rng, bid, bb, -1, dt, prm)
        _deep(rng, ask, ba, 1, dt, prm)
        st[I_BB] = bb
        st[I_BA] = ba
        if bb < RECENTRE_MARGIN or ba > w - RECENTRE_MARGIN:
            _recentre(rng, bid, ask, st, prm)
        # publish: top-50 diff against what the client holds
        nb_ = _top(bid, st[I_BB], -1, new_idx[0], new_lots[0])
        na_ = _top(ask, st[I_BA], 1, new_idx[1], new_lots[1])
        base = st[I_BASE]
        k = _diff(pub_idx[0] - (base - st[5]), pub_lots[0], st[I_NPB], new_idx[0], new_lots[0],
                  nb_, -1, base, 0, out_side, out_tick, out_lots, k)
        k = _diff(pub_idx[1] - (base - st[5]), pub_lots[1], st[I_NPA], new_idx[1], new_lots[1],
                  na_, 1, base, 1, out_side, out_tick, out_lots, k)
        pub_idx[0, :nb_] = new_idx[0, :nb_]
        pub_lots[0, :nb_] = new_lots[0, :nb_]
        pub_idx[1, :na_] = new_idx[1, :na_]
        pub_lots[1, :na_] = new_lots[1, :na_]
        st[I_NPB] = nb_
        st[I_NPA] = na_
        st[5] = base  # the base the published indices refer to
        out_off[s + 1] = k
    return n_steps


# ---- the Python side: state, encoding ------------------------------------------------------

def _price_text(tick: int) -> str:
    return f"{tick // 10}.{tick % 10}"


def _size_text(lots: int) -> str:
    return f"{lots // 1000}.{lots % 1000:03d}" if lots else "0"


class Simulation:
    """A resumable simulation: `frames()` yields `(receive_ts_ns, wire_frame)` in order."""

    CHUNK = 2000  # steps per numba call (bounded change buffers)

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.prm = config.params.as_array()
        mixed = (config.seed * 0x9E3779B97F4A7C15 + 1) & 0xFFFFFFFFFFFFFFFF
        self.rng = np.array([mixed], dtype=np.uint64)
        # latency / cts / seq noise: numpy's PCG64, seeded from the same seed
        self.noise = np.random.default_rng([config.seed, 0x5EED])
        self.topic = orderbook_topic(config.symbol)
        self.bid = np.zeros(WINDOW, np.int64)
        self.ask = np.zeros(WINDOW, np.int64)
        mid_tick = round(config.start_price / TICK)
        self.st = np.zeros(8, np.int64)
        self.st[I_BASE] = mid_tick - WINDOW // 2
        self.st[5] = self.st[I_BASE]
        self.st[I_BB] = WINDOW // 2
        self.st[I_BA] = WINDOW // 2 + 1
        _fill_deep(self.rng, self.bid, 1, WINDOW // 2, self.prm)
        _fill_deep(self.rng, self.ask, WINDOW // 2 + 2, WINDOW - 1, self.prm)
        self.bid[WINDOW // 2] = 10_000  # 10 BTC best queues
        self.ask[WINDOW // 2 + 1] = 10_000
        self.pub_idx = np.zeros((2, DEPTH), np.int64)
        self.pub_lots = np.zeros((2, DEPTH), np.int64)
        self.u = 0
        self.seq = 0
        self.pushes = 0  # book pushes
        self.last_recv = 0
        # trades: a generator of their own, so the book stream does not depend on them
        self.trng = np.array([_mix64(mixed ^ 0x7EADE5)], dtype=np.uint64)
        self.trade_noise = np.random.default_rng([config.seed, 0x7EAD])
        self.tr = np.zeros((4, self.CHUNK * 64 + 2 * MAX_STEP_FILLS), np.int64)
        self.trk = np.zeros(2, np.int64)  # fills written, market orders so far (this chunk)
        self.trade_topic = f"publicTrade.{config.symbol}"
        self.trades = 0
        self.trade_pushes = 0
        self.last_trade_tick = 0
        self.tick_dir = "ZeroPlusTick"
        self.id_salt = _mix64(config.seed ^ 0x1D5A17)

    def _levels_text(self, side: int) -> str:
        n = int(self.st[I_NPB] if side == 0 else self.st[I_NPA])
        base = int(self.st[5])
        return ",".join(
            f'["{_price_text(base + i)}","{_size_text(q)}"]'
            for i, q in zip(self.pub_idx[side, :n].tolist(), self.pub_lots[side, :n].tolist(),
                            strict=True)
        )

    def frames(self) -> Iterator[tuple[int, str]]:
        cfg = self.config
        dt_s = cfg.step_ms / 1000.0
        n_total = cfg.n_steps
        off = np.zeros(self.CHUNK + 1, np.int64)
        cap = self.CHUNK * STEP_CAPACITY
        side = np.zeros(cap, np.int64)
        tick = np.zeros(cap, np.int64)
        lots = np.zeros(cap, np.int64)
        tr_off = np.zeros(self.CHUNK + 1, np.int64)
        prefix = f'{{"topic":"{self.topic}","type":"'
        sym = cfg.symbol
        done = 0
        first = True
        start_ms = cfg.start_ms
        while done < n_total:
            # the first call runs one step alone: the snapshot is the book after step 0
            n = 1 if first else min(self.CHUNK, n_total - done)
            n = _run(self.rng, self.bid, self.ask, self.st, self.pub_idx, self.pub_lots, self.prm,
                     dt_s, n, off, side, tick, lots, self.trng, self.tr, tr_off, self.trk)
            counts = np.diff(off[: n + 1])
            active = np.arange(1) if first else np.flatnonzero(counts)
            latency = 4_000_000 + self.noise.exponential(6_000_000, len(active)).astype(np.int64)
            cts_lag = self.noise.integers(1, 6, len(active))
            seq_step = self.noise.integers(1, 40, len(active))
            trade_steps = np.flatnonzero(np.diff(tr_off[: n + 1])) if cfg.trades else active[:0]
            # (step, 0 = trades / 1 = book, index): a step's trades come before its book delta
            pushes = sorted([(int(s), 1, j) for j, s in enumerate(active.tolist())]
                            + [(int(s), 0, -1) for s in trade_steps.tolist()])
            book_of_step = {s: j for j, s in enumerate(active.tolist())}
            for s, is_book, j in pushes:
                ts_ms = start_ms + (done + s) * cfg.step_ms
                if not is_book:
                    # cross sequence: after the previous book push, up to this step's one
                    j_book = book_of_step.get(s)
                    top = self.seq + (int(seq_step[j_book]) if j_book is not None else 1)
                    yield self._trade_push(ts_ms, int(tr_off[s]), int(tr_off[s + 1]), top)
                    continue
                a, b = int(off[s]), int(off[s + 1])
                if first:
                    kind = "snapshot"
                    bids = self._levels_text(0)
                    asks = self._levels_text(1)
                    first = False
                else:
                    kind = "delta"
                    sd = side[a:b].tolist()
                    tk = tick[a:b].tolist()
                    lt = lots[a:b].tolist()
                    bids = ",".join(f'["{_price_text(t)}","{_size_text(q)}"]'
                                    for c, t, q in zip(sd, tk, lt, strict=True) if c == 0)
                    asks = ",".join(f'["{_price_text(t)}","{_size_text(q)}"]'
                                    for c, t, q in zip(sd, tk, lt, strict=True) if c == 1)
                self.u += 1
                self.seq += int(seq_step[j])
                self.pushes += 1
                frame = (f'{prefix}{kind}","ts":{ts_ms},"data":{{"s":"{sym}","b":[{bids}],'
                         f'"a":[{asks}],"u":{self.u},"seq":{self.seq}}},"cts":{ts_ms - int(cts_lag[j])}}}')
                # one TCP stream: receive times never go backwards
                self.last_recv = max(self.last_recv + 1000, ts_ms * 1_000_000 + int(latency[j]))
                yield self.last_recv, frame
            done += n

    def _trade_push(self, ts_ms: int, a: int, b: int, seq_top: int) -> tuple[int, str]:
        """One publicTrade push: the step's fills, oldest first (Bybit's key order).

        Fills of one market order share a cross sequence; the step's orders take the last
        sequence numbers up to `seq_top` (the step's book push), never one at or below the
        previous book push's (so the book frames do not depend on the trades)."""
        sym = self.config.symbol
        items = []
        orders = self.tr[3, a:b].tolist()
        n_orders = len(set(orders))
        seq = seq_top - n_orders
        for k, (taker, t, q, order) in enumerate(zip(self.tr[0, a:b].tolist(),
                                                     self.tr[1, a:b].tolist(),
                                                     self.tr[2, a:b].tolist(), orders,
                                                     strict=True)):
            if k == 0 or order != orders[k - 1]:
                seq = max(seq + 1, self.seq + 1)
            if t > self.last_trade_tick:
                self.tick_dir = "PlusTick"
            elif t < self.last_trade_tick:
                self.tick_dir = "MinusTick"
            elif self.tick_dir in ("PlusTick", "MinusTick"):
                self.tick_dir = "Zero" + self.tick_dir
            self.last_trade_tick = t
            self.trades += 1
            items.append(
                f'{{"T":{ts_ms},"s":"{sym}","S":"{"Buy" if taker > 0 else "Sell"}",'
                f'"v":"{_size_text(q)}","p":"{_price_text(t)}","L":"{self.tick_dir}",'
                f'"i":"{self._trade_id(self.trades)}","BT":false,"seq":{min(seq, seq_top)}}}')
        self.trade_pushes += 1
        latency = 3_000_000 + int(self.trade_noise.exponential(5_000_000))
        self.last_recv = max(self.last_recv + 1000, ts_ms * 1_000_000 + latency)
        frame = (f'{{"topic":"{self.trade_topic}","type":"snapshot","ts":{ts_ms},'
                 f'"data":[{",".join(items)}]}}')
        return self.last_recv, frame

    def _trade_id(self, n: int) -> str:
        """A UUID-shaped id, unique per (seed, n) and the same on every run."""
        h = _mix64(self.id_salt + n)
        lo = _mix64(h ^ 0x5DEECE66D)
        text = f"{h:016x}{lo:016x}"
        return f"{text[:8]}-{text[8:12]}-5{text[13:16]}-9{text[17:20]}-{text[20:32]}"


def _mix64(z: int) -> int:
    """splitmix64's finalizer (Python ints, 64-bit)."""
    mask = 0xFFFFFFFFFFFFFFFF
    z = (z + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def simulate(config: SimulatorConfig) -> Iterator[tuple[int, str]]:
    """The simulated stream: `(receive_ts_ns, Bybit v5 wire frame)` pairs in time order."""
    return Simulation(config).frames()


class SimulationConflict(SettingsError):
    """The raw store already holds other captures for a day the simulation would write."""


def simulation_token(seed: int) -> str:
    """The 8-hex file-name token of a seed's simulated files."""
    return f"{(seed * 2654435761) & 0xFFFFFFFF:08x}"


def simulate_to_store(settings, config: SimulatorConfig, replace: bool = False,
                      progress: bool = False, lines_per_member: int = 2000) -> dict:
    """Write a simulated stream into the raw capture store as if collected live.

    File names carry a token derived from the seed, so a run is deterministic and its files
    are recognizable: `replace` deletes this seed's earlier files in the days the run covers.
    Files of anything else there (collected or imported captures, other seeds) are never
    touched: the run refuses to mix its stream with them (SimulationConflict).
    Returns a JSON-able summary."""
    from trade_pipeline.storage.raw_store import RAW_SUFFIX, RawStoreWriter, raw_files_for_day

    exchange = settings.exchange
    end = config.start + dt.timedelta(seconds=config.duration_s)
    days = []
    d = config.start.date()
    while d <= end.date():
        days.append(d.isoformat())
        d += dt.timedelta(days=1)
    token = simulation_token(config.seed)
    own_suffix = f"-{token}{RAW_SUFFIX}"
    existing = [p for day in days for p in raw_files_for_day(settings, exchange, config.symbol, day)]
    foreign = [p for p in existing if not p.name.endswith(own_suffix)]
    if foreign:
        raise SimulationConflict(
            f"{len(foreign)} other capture file(s) already in the simulated days, e.g. "
            f"{foreign[0]}; a simulated stream is not mixed with them (remove them first)"
        )
    if replace:
        for path in existing:
            path.unlink()
    writer = RawStoreWriter(settings.raw_dir, exchange, config.symbol,
                            flush_interval=float("inf"), name_token=token)
    t0 = time.perf_counter()
    bar = None
    if progress:
        from rich.console import Console
        from rich.progress import Progress

        bar = Progress(console=Console(stderr=True), transient=True)
        bar.start()
        task = bar.add_task("simulate", total=config.n_steps)
    sim = Simulation(config)
    first_ts = last_ts = None
    try:
        for recv_ns, frame in sim.frames():
            writer.append(recv_ns, frame)
            if first_ts is None:
                first_ts = recv_ns
            last_ts = recv_ns
            if writer.buffered >= lines_per_member:
                writer.flush()
                if bar is not None:
                    bar.update(task, completed=(recv_ns // 1_000_000 - config.start_ms) // config.step_ms)
    finally:
        writer.close()
        if bar is not None:
            bar.stop()
    return {
        "messages": sim.pushes + sim.trade_pushes,  # lines written (both topics)
        "book_pushes": sim.pushes,
        "trade_pushes": sim.trade_pushes,
        "trades": sim.trades,
        "steps": config.n_steps,
        "files": [str(p) for p in writer.paths],
        "bytes": writer.stats.bytes_written,
        "days": days,
        "seconds": round(time.perf_counter() - t0, 3),
        "first_receive_ns": first_ts,
        "last_receive_ns": last_ts,
    }
