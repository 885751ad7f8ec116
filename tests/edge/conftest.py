"""Fixtures of the edge tests: a raw channel to the default service, for calls
made the way a client in another language makes them (no SDK)."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from tests.conftest import RunningService


@pytest.fixture
def channel(svc: RunningService) -> Iterator[grpc.Channel]:
    """A plain insecure channel to `svc`; it carries no credentials of its own."""
    with grpc.insecure_channel(svc.target) as chan:
        yield chan
