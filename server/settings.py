"""The one typed settings object, read from the environment (names as in the README)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    trading_listen: str = Field("127.0.0.1:50051", description="HOST:PORT to serve on")
    trading_api_key: SecretStr | None = Field(
        None, description="Bearer token clients must send; generated and printed once if unset"
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
    openai_api_key: SecretStr | None = None

    @field_validator("trading_strategy_symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: object) -> object:
        if isinstance(value, str):
            return [s.strip().upper() for s in value.split(",") if s.strip()]
        return value
