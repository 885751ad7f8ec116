"""The broker the settings ask for, checked before anything trades.

TRADING_BROKER=paper (the default) is the in-process simulator, built with the
core (it is rebuilt from the audit log's fills). TRADING_BROKER=alpaca is
Alpaca through alpaca-py: both ALPACA_API_KEY and ALPACA_SECRET_KEY are
required, Alpaca must accept them, and a live (real-money) ALPACA_BASE_URL
also needs TRADING_LIVE=yes. Each refusal is one line naming the setting
(BrokerConfigError), and the service does not start.
"""

from __future__ import annotations

import logging

from brokers.base import Broker, BrokerConfigError, BrokerUnavailable
from server.settings import Settings

log = logging.getLogger(__name__)

ALPACA_SETTINGS = ("alpaca_api_key", "alpaca_secret_key", "alpaca_stream_url")


def build_broker(settings: Settings) -> Broker | None:
    """The configured broker, verified; None for the paper simulator (the core
    builds it). Raises BrokerConfigError."""
    if settings.trading_broker == "paper":
        named = [name.upper() for name in ALPACA_SETTINGS if getattr(settings, name)]
        if named:
            log.warning(
                "%s set but TRADING_BROKER=paper: the in-process paper simulator trades, "
                "Alpaca is not used (set TRADING_BROKER=alpaca to trade there)",
                ", ".join(named),
            )
        return None
    return _alpaca(settings)


LEASE_KEY = "trading"
"""What the trading lease is named for. It is taken on the audit database, so it
is one per log whatever the broker: two instances on one log (and so one
account) can never both trade."""


def _alpaca(settings: Settings) -> Broker:
    # Imported here: alpaca-py (and pandas under it) is loaded only when it trades.
    from brokers.alpaca.adapter import (
        AlpacaBroker,
        AlpacaConfig,
        derive_stream_url,
        is_paper_endpoint,
    )

    key = settings.alpaca_api_key.get_secret_value() if settings.alpaca_api_key else ""
    secret = settings.alpaca_secret_key.get_secret_value() if settings.alpaca_secret_key else ""
    missing = [n for n, v in (("ALPACA_API_KEY", key), ("ALPACA_SECRET_KEY", secret)) if not v]
    if missing:
        raise BrokerConfigError(
            f"TRADING_BROKER=alpaca needs ALPACA_API_KEY and ALPACA_SECRET_KEY: "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set"
        )
    base_url = settings.alpaca_base_url.rstrip("/")
    live = not is_paper_endpoint(base_url)
    if live and not settings.trading_live:
        raise BrokerConfigError(
            f"ALPACA_BASE_URL={base_url} is a live (real-money) endpoint: set TRADING_LIVE=yes "
            "to trade it, or use https://paper-api.alpaca.markets"
        )
    broker = AlpacaBroker(
        AlpacaConfig(
            api_key=key,
            secret_key=secret,
            base_url=base_url,
            stream_url=settings.alpaca_stream_url or derive_stream_url(base_url),
            request_timeout_s=settings.alpaca_request_timeout_seconds,
            stream_grace_s=settings.trading_broker_stream_grace_seconds,
            live=live,
        )
    )
    try:
        broker.verify()  # 401/403: BrokerConfigError, naming the variables
    except BrokerUnavailable as exc:
        # Not a configuration error: the service starts halted and reconciles
        # when Alpaca answers (the supervisor keeps trying).
        log.error("Alpaca at %s does not answer at start-up: %s", base_url, exc)
    return broker
