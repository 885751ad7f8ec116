"""Alpaca through alpaca-py: the production broker (paper endpoint unless told otherwise).

`AlpacaBroker(AlpacaConfig(...))` implements the broker port (`brokers.base.Broker`).
"""

from brokers.alpaca.adapter import AlpacaBroker
from brokers.alpaca.config import AlpacaConfig, derive_stream_url, is_paper_endpoint

__all__ = ["AlpacaBroker", "AlpacaConfig", "derive_stream_url", "is_paper_endpoint"]
