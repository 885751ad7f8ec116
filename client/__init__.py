"""Python client of the trading service: the typed SDK, the tradectl CLI and the demo."""

from client.sdk import AsyncTradingClient, TradingClient, market_event

__all__ = ["AsyncTradingClient", "TradingClient", "market_event"]
