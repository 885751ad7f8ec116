"""The one typed settings object, read from the environment (names as in the README)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from server.interceptors.allow_list import parse_networks


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    trading_listen: str = Field("127.0.0.1:50051", description="HOST:PORT to serve on")
    trading_api_key: SecretStr | None = Field(
        None, description="Bearer token clients must send; generated and printed once if unset"
    )
    trading_tokens_file: Path | None = Field(
        None, description="JSON file of principals: {name: {token, roles}}; see server/auth.py"
    )
    trading_tokens_file_allow_insecure: bool = Field(
        False,
        description="accept (with a warning) a tokens file that others may read or change",
    )
    # Transport security (server/tls.py): bearer tokens travel in every call's
    # metadata, so off the machine they need TLS under them.
    trading_tls_cert: Path | None = Field(
        None,
        description="PEM certificate (chain) the server presents; with TRADING_TLS_KEY it "
        "serves TLS",
    )
    trading_tls_key: Path | None = Field(
        None, description="PEM private key (unencrypted) of TRADING_TLS_CERT"
    )
    trading_tls_client_ca: Path | None = Field(
        None,
        description="PEM CA certificates; set: every client must present a certificate "
        "they signed (mutual TLS)",
    )
    trading_allow_plaintext: bool = Field(
        False,
        description="serve without TLS on an address other than loopback (something else "
        "encrypts the traffic: a mesh, a TLS-terminating proxy)",
    )
    database_url: str = Field(
        "sqlite:///var/trading-audit.db", description="audit store (SQLAlchemy URL)"
    )
    trading_anchor_file: str = Field(
        "auto",
        description=(
            "append-only file the audit log's head is published to (see audit/anchor.py): "
            "a path; 'auto': <SQLite file>.anchors on SQLite, none on PostgreSQL; 'off': none"
        ),
    )
    trading_anchor_key: SecretStr | None = Field(
        None,
        description="HMAC key signing each anchor; unset: a random key kept in <anchor file>.key",
    )
    trading_anchor_every_records: int = Field(
        10_000, gt=0, description="publish the head after this many committed records"
    )
    trading_anchor_every_seconds: float = Field(
        60, gt=0, description="and at most this long after a record is committed"
    )
    trading_clock: Literal["wall", "event"] = Field(
        "wall", description="wall: machine time; event: market-event timestamps drive time"
    )
    trading_strategy_symbols: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["SPY", "QQQ", "IWM"],
        description="comma-separated symbols of the moving-average crossover strategy",
    )
    trading_strategy_short_period: int = Field(
        20, ge=1, description="the crossover's short moving average, in ticks"
    )
    trading_strategy_long_period: int = Field(
        50, ge=2, description="the crossover's long moving average, in ticks (above the short)"
    )
    trading_sizing_fraction: Decimal = Field(
        Decimal("0.04"),
        gt=0,
        le=1,
        description="the share of equity one strategy entry buys (risk limits still apply)",
    )
    paper_starting_cash: Decimal = Field(Decimal("100000"), gt=0)
    paper_slippage_bps: Decimal = Field(Decimal("5"), ge=0)
    paper_commission_per_share: Decimal = Field(
        Decimal(0), ge=0, description="the paper broker's fee per share of each execution"
    )
    paper_commission_bps: Decimal = Field(
        Decimal(0), ge=0, description="and in basis points of each execution's notional"
    )
    paper_commission_minimum: Decimal = Field(
        Decimal(0), ge=0, description="the least one execution costs when it costs anything"
    )
    max_future_skew_seconds: int = Field(
        300, ge=0, description="market events stamped further ahead of wall time are refused"
    )
    # Capacity (DESIGN.md invariant 8: no client can starve another); see
    # server/stream_limits.py and create_server in server/bootstrap.py.
    trading_max_streams: int = Field(
        32,
        ge=1,
        description="long-lived calls (StreamMarketData, SubscribeEvents, QueryAudit, health "
        "Watch, reflection) open at once in total; more are refused with RESOURCE_EXHAUSTED",
    )
    trading_max_streams_per_principal: int = Field(
        8, ge=1, description="long-lived calls one principal may have open at once"
    )
    trading_unary_workers: int = Field(
        16,
        ge=1,
        description="threads kept for health, status and other unary calls, "
        "on top of one per stream allowed",
    )
    trading_max_connections: int = Field(
        256, ge=1, description="HTTP/2 connections open at once; more are closed on accept"
    )
    trading_keepalive_time_seconds: float = Field(
        30, gt=0, description="the server pings a connection that has been quiet this long"
    )
    trading_keepalive_timeout_seconds: float = Field(
        10, gt=0, description="a connection that leaves a ping unanswered this long is closed"
    )
    trading_connection_idle_seconds: float = Field(
        300, gt=0, description="a connection with no call for this long is closed (GOAWAY)"
    )
    trading_handshake_timeout_seconds: float = Field(
        10,
        gt=0,
        description="a connection that has not completed the HTTP/2 handshake by then is closed",
    )
    trading_max_message_bytes: int = Field(
        4 * 1024 * 1024,
        ge=64 * 1024,
        le=64 * 1024 * 1024,
        description="largest request message accepted (RESOURCE_EXHAUSTED above it)",
    )
    # Who may call, and how often (server/interceptors/).
    trading_allowed_clients: str | None = Field(
        None,
        description="comma-separated CIDR blocks or addresses calls may come from "
        "(10.0.0.0/8, ::1); unset: any address. Checked before authentication",
    )
    trading_access_log: str = Field(
        "-",
        description="one JSON line per RPC: '-' standard error, 'off', or a file path",
    )
    # Off by default: the endpoint is plain HTTP with no authentication (README, Monitoring).
    trading_metrics_listen: str | None = Field(
        None,
        description="HOST:PORT of the Prometheus /metrics endpoint (plain HTTP, no "
        "authentication), for example 127.0.0.1:9464; unset or 'off': none",
    )
    trading_rate_limit_per_second: float = Field(
        200,
        ge=0,
        description="calls each principal may make a second, on average (0: no limit); "
        "a stream is one call",
    )
    trading_rate_limit_burst: int = Field(
        400, ge=1, description="calls a principal may make at once, above the average rate"
    )
    trading_shutdown_grace_seconds: float = Field(
        10,
        ge=0,
        description="on SIGTERM/SIGINT, calls in flight get this long to finish before they "
        "are cancelled (server/main.py)",
    )
    # The broker (server/broker_factory.py), and how execution follows it.
    trading_broker: Literal["paper", "alpaca"] = Field(
        "paper", description="paper: the in-process simulator; alpaca: Alpaca through alpaca-py"
    )
    trading_live: bool = Field(
        False,
        description="the second opt-in to trade a live (real-money) Alpaca endpoint; "
        "without it a non-paper ALPACA_BASE_URL refuses to start",
    )
    alpaca_api_key: SecretStr | None = Field(None, description="Alpaca key id")
    alpaca_secret_key: SecretStr | None = Field(None, description="Alpaca secret key")
    alpaca_base_url: str = Field(
        "https://paper-api.alpaca.markets", description="Alpaca Trading API (paper by default)"
    )
    alpaca_stream_url: str | None = Field(
        None,
        description="trade_updates websocket; unset: derived from ALPACA_BASE_URL "
        "(https://X -> wss://X/stream)",
    )
    alpaca_data_url: str | None = Field(
        None, description="Alpaca market-data REST API; unset: the SDK's default"
    )
    alpaca_data_stream_url: str | None = Field(
        None, description="Alpaca market-data websocket; unset: the SDK's default for the feed"
    )
    alpaca_data_feed: Literal["iex", "sip"] = Field(
        "iex", description="which Alpaca market-data feed (iex is free; sip needs a plan)"
    )
    alpaca_request_timeout_seconds: float = Field(
        10, gt=0, description="HTTP timeout of each Alpaca REST request (the SDK sets none)"
    )
    trading_broker_sweep_seconds: float = Field(
        30, gt=0, description="the broker's REST state is swept and reconciled this often"
    )
    trading_broker_stream_grace_seconds: float = Field(
        15,
        ge=0,
        description="the broker's event stream may be down this long before trading halts",
    )
    trading_broker_lookup_attempts: int = Field(
        5,
        ge=1,
        description="unanswered lookups of an order with an unknown outcome before the "
        "broker counts as unhealthy",
    )
    trading_order_timeouts: str = Field(
        "",
        description="working orders older than this are cancelled, per time in force: "
        "'DAY=3600,GTC=86400' (seconds; unset or 0: never)",
    )
    # Used by the OpenAI advisor.
    openai_api_key: SecretStr | None = Field(
        None, description="set: the advisor asks OpenAI; unset: the offline rule-based analyst"
    )
    openai_base_url: str | None = Field(
        None, description="OpenAI API base URL (OPENAI_BASE_URL); unset: the SDK's default"
    )
    openai_model: str = Field("gpt-4o-mini", description="model the OpenAI analyst asks")
    openai_timeout_seconds: float = Field(20, gt=0, description="per attempt")
    openai_max_retries: int = Field(
        2, ge=0, description="retries of transient errors (connection, 408, 409, 429, 5xx)"
    )
    advisor_idea_ttl_seconds: int = Field(
        900, gt=0, description="how long a trade idea may wait for a decision"
    )
    trading_risk_config: Path | None = Field(
        None,
        description="TOML file of risk limits (keys as GetRiskStatus.limits); defaults if unset",
    )
    advisor_price_band_pct: Decimal = Field(
        Decimal("0.05"),
        gt=0,
        description="an approval is refused when the price moved more than this since the idea",
    )

    @field_validator("trading_allowed_clients")
    @classmethod
    def _networks(cls, value: str | None) -> str | None:
        if value is not None:
            parse_networks(value)  # ValueError names the bad entry
        return value

    @field_validator("trading_metrics_listen", mode="before")
    @classmethod
    def _metrics_listen(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().lower() in ("", "off"):
                return None
            parse_host_port(value, "TRADING_METRICS_LISTEN")  # ValueError says what is wrong
            return value.strip()
        return value

    @field_validator("trading_strategy_symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: object) -> object:
        if isinstance(value, str):
            return [s.strip().upper() for s in value.split(",") if s.strip()]
        return value

    @model_validator(mode="after")
    def _periods_in_order(self) -> Self:
        if self.trading_strategy_short_period >= self.trading_strategy_long_period:
            raise ValueError(
                "TRADING_STRATEGY_SHORT_PERIOD must be below TRADING_STRATEGY_LONG_PERIOD "
                f"({self.trading_strategy_short_period} >= {self.trading_strategy_long_period})"
            )
        return self

    @field_validator("trading_tls_cert", "trading_tls_key", "trading_tls_client_ca", mode="before")
    @classmethod
    def _empty_path_is_unset(cls, value: object) -> object:
        # `TRADING_TLS_CERT=` (a blanked line in an env file) means unset, not the
        # current directory, which is what Path("") would make of it.
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _tls_files_together(self) -> Self:
        cert, key = self.trading_tls_cert, self.trading_tls_key
        if (cert is None) != (key is None):
            given, missing = ("CERT", "KEY") if key is None else ("KEY", "CERT")
            raise ValueError(
                f"TRADING_TLS_{given} is set but TRADING_TLS_{missing} is not: "
                "TLS needs the certificate and its private key"
            )
        if self.trading_tls_client_ca is not None and cert is None:
            raise ValueError(
                "TRADING_TLS_CLIENT_CA needs TRADING_TLS_CERT and TRADING_TLS_KEY: "
                "client certificates are only asked for over TLS"
            )
        return self


def parse_host_port(text: str, setting: str) -> tuple[str, int]:
    """HOST:PORT as (host, port): `127.0.0.1:9464`, `[::1]:9464`, `0.0.0.0:0` (port 0:
    any free port). ValueError naming `setting` otherwise."""
    host, sep, port = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(
            f"{setting}: {text!r:.60} is not HOST:PORT (for example 127.0.0.1:9464 or [::1]:9464)"
        )
    return host, int(port)
