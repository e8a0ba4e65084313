"""Backtest, paper trading and risk: one execution model for both."""
