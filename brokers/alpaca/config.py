"""How the Alpaca adapter is configured, and what an endpoint URL says about itself."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from brokers.base import BrokerConfigError

PAPER_HOST = "paper-api.alpaca.markets"
"""Alpaca's paper-trading Trading API; every other Alpaca host trades real money."""


@dataclass(frozen=True, slots=True)
class AlpacaConfig:
    """Credentials and endpoints, and how the adapter follows them.

    `base_url`: the Trading API (the SDK appends `/v2`); `stream_url`: the
    trade_updates websocket (`derive_stream_url(base_url)` when the operator set
    none). `request_timeout_s`: the HTTP timeout of every REST request (the SDK sets
    none). `stream_grace_s`: the stream may be down this long before `health()`
    says so. `live`: the opt-in to a real-money endpoint; without it a non-paper
    `base_url` is refused. `down_gap_interval_s`: while the stream is down, the sink
    is told of a gap this often so the service sweeps REST. `workers`: threads doing
    the REST requests (each order's requests always run on the same one, in order).
    """

    api_key: str
    secret_key: str
    base_url: str
    stream_url: str
    request_timeout_s: float = 10.0
    stream_grace_s: float = 15.0
    live: bool = False
    down_gap_interval_s: float = 5.0
    workers: int = 4


def derive_stream_url(base_url: str) -> str:
    """The trade_updates websocket of a Trading API: https://X -> wss://X/stream,
    http://X -> ws://X/stream (a loopback fake)."""
    parts = urlsplit(base_url.strip())
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise BrokerConfigError(
            f"ALPACA_BASE_URL must be an http(s) URL such as https://{PAPER_HOST}, not {base_url!r}"
        )
    path = parts.path.rstrip("/")
    return f"{scheme}://{parts.netloc}{path}/stream"


def is_paper_endpoint(base_url: str) -> bool:
    """True for Alpaca's paper API and for a loopback host (a local fake); False for
    anything else, which may trade real money (api.alpaca.markets, a proxy)."""
    host = (urlsplit(base_url.strip()).hostname or "").lower()
    if host == PAPER_HOST or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
