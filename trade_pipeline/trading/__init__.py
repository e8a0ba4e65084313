"""Backtest, paper trading and risk: one execution model for both.

Entry points:
- `backtest.run_backtest(snapshots, predictions, config) -> BacktestResult`: the shared
  engine over a snapshot frame; `predictions` has `timestamp` and `signal` (-1/0/+1) or
  `prediction` (turned into signals by the strategy's thresholds).
- `service.backtest_model(settings, "NAME@ALIAS", snapshots, config)` -> (result,
  predictions, model): batch features + the registered model + the backtest;
  `service.record_backtest(settings, result, ...)`: warehouse rows + MLflow run + plot.
- `paper.run_paper(settings, PaperConfig(url=..., duration_s=...), trading=..., model=...,
  shadow=...)`: the live loop (WebSocket -> book -> row -> features -> model -> signal ->
  engine), its stream kept by `market/ws_reconnect.py`.
- `walkforward.walkforward_command(settings, wf_config=..., trading=...)`: walk-forward's
  stitched out-of-sample predictions (`models/walkforward.py`) traded through the same
  engine, stored in the lake, the warehouse and MLflow.
- `engine.TradingConfig.load("exec.toml")`: every execution assumption
  (`execution.ExecutionConfig`) and the strategy limits (`strategy.StrategyConfig`).
- `event_backtest.run_event_backtest(events, EventBacktestConfig, signals=...)`: the
  event-level engine (`event/`) on a raw event stream (`market.events` layout) with a
  strategy (taker, model-driven maker, GLFT market maker); `event/engine.EventEngine` for
  orders by hand; `event_service` runs captures end to end (CLI `backtest --events`, the
  `event_backtest_results` asset).
"""
