"""The one typed settings object, read from the environment (names as in the README)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    trading_listen: str = Field("127.0.0.1:50051", description="HOST:PORT to serve on")
    trading_api_key: SecretStr | None = Field(
        None, description="Bearer token clients must send; generated and printed once if unset"
    )
    trading_tokens_file: Path | None = Field(
        None, description="JSON file of principals: {name: {token, roles}}; see server/auth.py"
    )
    database_url: str = Field(
        "sqlite:///var/trading-audit.db", description="audit store (SQLAlchemy URL)"
    )
    trading_clock: Literal["wall", "event"] = Field(
        "wall", description="wall: machine time; event: market-event timestamps drive time"
    )
    trading_strategy_symbols: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["SPY", "QQQ", "IWM"],
        description="comma-separated symbols of the moving-average crossover strategy",
    )
    paper_starting_cash: Decimal = Field(Decimal("100000"), gt=0)
    paper_slippage_bps: Decimal = Field(Decimal("5"), ge=0)
    max_future_skew_seconds: int = Field(
        300, ge=0, description="market events stamped further ahead of wall time are refused"
    )
    # Used by the Alpaca broker and the OpenAI advisor.
    alpaca_api_key: SecretStr | None = None
    alpaca_secret_key: SecretStr | None = None
    alpaca_base_url: str = "https://paper-api.alpaca.markets"
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
    advisor_price_band_pct: Decimal = Field(
        Decimal("0.05"),
        gt=0,
        description="an approval is refused when the price moved more than this since the idea",
    )

    @field_validator("trading_strategy_symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: object) -> object:
        if isinstance(value, str):
            return [s.strip().upper() for s in value.split(",") if s.strip()]
        return value
