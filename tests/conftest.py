"""Shared fixtures: a real service on a free loopback port, driven through the SDK.

`start_service(**settings)` builds the whole service (SQLite audit file under
tmp_path by default, paper broker, crossover strategy) exactly as `trading-server`
does, binds 127.0.0.1:0 and returns a handle with a connected `TradingClient`.
The NYSE calendar takes a second to build, so one instance serves the session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from audit.records import EventStore
from server.bootstrap import Service, create_server, load_calendar
from server.settings import Settings
from tests.support.databases import BACKENDS, database
from trading_sdk.client import TradingClient

TOKEN = "test-token"

# Generated tests check behaviour, not speed (speed lives in `make bench`): no
# per-example deadline, which on a loaded machine (the suite runs on every core)
# would fail a correct example for being slow.
hypothesis_settings.register_profile("suite", deadline=None)
hypothesis_settings.load_profile("suite")


@dataclass
class RunningService:
    service: Service
    client: TradingClient
    settings: Settings
    stopped: bool = False

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.service.port}"

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.client.close()
            self.service.stop(0)


StartService = Callable[..., RunningService]


@pytest.fixture(autouse=True)
def _no_client_tls_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK and the service read TRADING_TLS* as defaults: a developer's exported
    ones must not turn the suite's plaintext loopback servers and clients into TLS
    ones. Tests of TLS set what they need."""
    for name in (
        "TRADING_TLS",
        "TRADING_TLS_CA",
        "TRADING_TLS_CLIENT_CERT",
        "TRADING_TLS_CLIENT_KEY",
        "TRADING_TLS_SERVER_NAME",
        "TRADING_TLS_CERT",
        "TRADING_TLS_KEY",
        "TRADING_TLS_CLIENT_CA",
        "TRADING_ALLOW_PLAINTEXT",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def calendar() -> Any:
    return load_calendar()


@pytest.fixture
def start_service(tmp_path: Path, calendar: Any) -> Iterator[StartService]:
    running: list[RunningService] = []

    def start(store: EventStore | None = None, **overrides: Any) -> RunningService:
        values: dict[str, Any] = {
            "database_url": f"sqlite:///{tmp_path / 'audit.db'}",
            "trading_clock": "event",
            # The product logs every call to stderr; tests that read it set a file.
            "trading_access_log": "off",
        }
        values.update(overrides)
        settings = Settings(**values)
        service = create_server(
            settings, "127.0.0.1:0", token=TOKEN, store=store, calendar=calendar
        )
        service.server.start()
        handle = RunningService(
            service, TradingClient(f"127.0.0.1:{service.port}", TOKEN), settings
        )
        running.append(handle)
        return handle

    yield start
    for handle in running:
        handle.stop()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh audit database: a SQLite file, or a PostgreSQL database dropped afterwards."""
    with database(request.param, tmp_path / "audit.db", "service_test") as url:
        yield url


@pytest.fixture
def svc(start_service: StartService, database_url: str) -> RunningService:
    """The default service, on SQLite and on PostgreSQL: event clock, SPY/QQQ/IWM crossover."""
    return start_service(database_url=database_url)
