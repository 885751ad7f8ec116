"""Only one instance trades a log at a time: the second refuses to start and names
the holder; the first's stop releases the lease, and the next instance's fencing
epoch is larger, journaled in its ServiceStarted record."""

from __future__ import annotations

import json

import pytest

from audit.lease import LeaseHeld
from tests.conftest import StartService


def test_a_second_instance_on_the_same_log_refuses_to_start_naming_the_holder(
    start_service: StartService, database_url: str
) -> None:
    first = start_service(database_url=database_url)
    [started] = [r for r in first.client.query_audit() if r.event_type == "ServiceStarted"]
    holder = json.loads(started.payload_json)["instance"]

    with pytest.raises(LeaseHeld) as refused:
        start_service(database_url=database_url)

    assert refused.value.holder == holder
    assert holder in str(refused.value) and "\n" not in str(refused.value)
    assert first.client.get_status().trading  # the first goes on serving

    first.stop()
    second = start_service(database_url=database_url)
    starts = [
        json.loads(r.payload_json)
        for r in second.client.query_audit()
        if r.event_type == "ServiceStarted"
    ]
    assert [s["log_id"] for s in starts] == [starts[0]["log_id"]] * 2  # one log, one id
    assert starts[1]["lease_epoch"] > starts[0]["lease_epoch"]
