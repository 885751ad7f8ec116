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


@pytest.mark.postgres
def test_losing_the_lease_halts_trading_until_a_person_lifts_it(
    start_service: StartService,
) -> None:
    from sqlalchemy.engine import make_url

    from audit.lease import APPLICATION_NAME
    from domain.risk import TradingCause, TradingState
    from server.broker_supervisor import LEASE_BY
    from tests import pg
    from tests.support.databases import postgres_database

    with postgres_database("lease_loss") as url:
        running = start_service(database_url=url)
        supervisor = running.service.supervisor
        assert supervisor is not None
        with pg.connect(url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND application_name = %s",
                (make_url(url).database, APPLICATION_NAME),
            )
        supervisor.check()

        risk = running.service.core.risk
        status = risk.causes[TradingCause.OPERATOR]
        assert (status.state, status.changed_by) == (TradingState.HALTED, LEASE_BY)
        supervisor.check()  # said once, not again every second
        running.service.core.bus.flush()  # the supervisor's inputs commit in the background
        halts = [r for r in running.client.query_audit() if r.event_type == "TradingStateChanged"]
        assert len([h for h in halts if LEASE_BY in h.payload_json]) == 1
        running.stop()
