"""mmd: a market-making daemon that paper-trades on Bybit V5 public market data."""

__version__ = "0.1.0"
