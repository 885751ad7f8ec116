"""The broker port: the one interface execution talks to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from domain.orders import BrokerReport, SubmitOrder
from domain.portfolio import Account, Position

ReportHandler = Callable[[BrokerReport], None]


class BrokerError(Exception):
    """The broker refused or failed a request; the message says why."""


class Broker(Protocol):
    """Orders are acknowledged asynchronously: whatever happens to an order comes
    back as a `BrokerReport` through the handler set with `set_report_handler`,
    possibly before `submit_order` returns."""

    name: str

    def set_report_handler(self, handler: ReportHandler) -> None: ...

    def submit_order(self, order: SubmitOrder) -> None: ...

    def cancel_order(self, client_order_id: str) -> None: ...

    def get_account(self) -> Account: ...

    def get_positions(self) -> list[Position]: ...

    def get_open_orders(self) -> list[BrokerReport]: ...

    def healthy(self) -> bool: ...
