"""A refused market-data message carries machine-readable facts (google.rpc.ErrorInfo),
so a feed handler can resume from the right message without parsing prose."""

from __future__ import annotations

import grpc
import pytest

from tests.conftest import RunningService
from tests.support.market import SESSION_START, minute_ticks
from trading_sdk import error_info, market_event


def test_a_refused_message_says_where_to_resume(svc: RunningService) -> None:
    good = minute_ticks("SPY", [100.0, 101.0, 102.0])
    bad = [*minute_ticks("SPY", [103.0]), market_event("SPY", float("nan"), 1, SESSION_START)]

    with pytest.raises(grpc.RpcError) as refused:
        svc.client.stream_market_data([good[:2], good[2:], bad])

    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(refused.value)
    assert info is not None
    assert (info.reason, info.domain) == ("MARKET_DATA_MESSAGE_REFUSED", "trading.v1")
    assert dict(info.metadata) == {
        "refused_message_index": "2",
        "event_index": "1",
        "cause": "BAD_MARKET_EVENT",
        "accepted_messages": "2",
        "accepted_events": "3",
    }


def test_errors_without_a_reason_carry_no_details(svc: RunningService) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        svc.client.activate_strategy("no_such_strategy")

    assert refused.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(refused.value) is None
