"""Code written against the SDK's old home (`client`, `client.sdk`) keeps working
for now, and is told where the SDK lives."""

from __future__ import annotations

import importlib
import sys

import pytest

import trading_sdk
import trading_sdk.client


@pytest.mark.parametrize(
    "name", ["TradingClient", "AsyncTradingClient", "error_info", "market_event"]
)
def test_the_old_names_are_the_sdks_with_a_warning_naming_the_new_import(name: str) -> None:
    import client

    with pytest.warns(DeprecationWarning, match=f"use 'from trading_sdk import {name}'"):
        old = getattr(client, name)

    assert old is getattr(trading_sdk, name)


def test_the_old_module_is_the_sdks_with_a_warning() -> None:
    sys.modules.pop("client.sdk", None)
    with pytest.warns(DeprecationWarning, match="import from 'trading_sdk'"):
        old = importlib.import_module("client.sdk")

    assert old.TradingClient is trading_sdk.client.TradingClient
    assert set(old.__all__) == set(trading_sdk.client.__all__)


def test_other_names_are_still_missing() -> None:
    import client

    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        _ = client.Nothing
