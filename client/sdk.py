"""Deprecated: the SDK moved to ``trading_sdk`` (its own distribution); this module
re-exports it so that code written against ``client.sdk`` keeps working for now."""

import warnings

from trading_sdk.client import *  # noqa: F403
from trading_sdk.client import __all__ as __all__

warnings.warn(
    "'client.sdk' is deprecated: the SDK is its own distribution now; "
    "import from 'trading_sdk' (or 'trading_sdk.client')",
    DeprecationWarning,
    stacklevel=2,
)
