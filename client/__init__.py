"""Python client of the trading service: the typed SDK, the tradectl CLI and the demo."""

from client.sdk import AsyncTradingClient, TradingClient, error_info, market_event

__all__ = ["AsyncTradingClient", "TradingClient", "error_info", "market_event"]
