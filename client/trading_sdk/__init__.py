"""The trading service's Python SDK (distribution ``trading-sdk``).

``TradingClient`` (sync) and ``AsyncTradingClient`` (asyncio), one method per
RPC of ``trading.v1.TradingService``; the generated messages and stubs are in
``trading_sdk.v1``. Needs grpcio, protobuf and grpcio-status only; building
columnar market data from arrays or a DataFrame (``stream_arrays``,
``stream_frame``) also needs numpy (``pip install 'trading-sdk[columnar]'``).
"""

from trading_sdk.client import AsyncTradingClient, TradingClient, error_info, market_event
from trading_sdk.tls import ClientTLS

__all__ = ["AsyncTradingClient", "ClientTLS", "TradingClient", "error_info", "market_event"]
