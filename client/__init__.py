"""The trading service's command line (tradectl), backtests and demo.

The SDK they use is its own distribution, built from this folder's
pyproject.toml: the import root ``trading_sdk`` (client/trading_sdk/).
``from client import TradingClient`` (and ``client.sdk``), where the SDK used to
be, still work for now, with a DeprecationWarning naming the new import.
"""

from __future__ import annotations

import warnings
from typing import Any

_MOVED = frozenset({"AsyncTradingClient", "TradingClient", "error_info", "market_event"})


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module 'client' has no attribute {name!r}")
    warnings.warn(
        f"'from client import {name}' is deprecated: the SDK is its own distribution "
        f"now; use 'from trading_sdk import {name}'",
        DeprecationWarning,
        stacklevel=2,
    )
    import trading_sdk

    return getattr(trading_sdk, name)
