"""What a refused request must leave alone, and where the ticks a service took in
were journaled: the tests compare the state a user can see before and after."""

from __future__ import annotations

import json
from dataclasses import dataclass

from audit.batch_codec import decode_batch
from trading_sdk.client import TradingClient
from trading_sdk.v1 import risk_pb2
from trading_sdk.v1 import trading_service_pb2 as pb


@dataclass(frozen=True)
class Snapshot:
    """Everything a refused request must leave exactly as it was."""

    last_seq: int
    chain_ok: bool
    counters: pb.Counters
    trading: risk_pb2.TradingStatus
    positions: pb.ListPositionsResponse
    strategies: pb.ListStrategiesResponse
    orders: pb.ListOrderHistoryResponse
    account: pb.GetAccountResponse


def snapshot(client: TradingClient) -> Snapshot:
    """The state a user can read through the SDK, taken at once."""
    verified = client.verify_audit()
    status = client.get_status()
    return Snapshot(
        last_seq=verified.last_seq,
        chain_ok=verified.ok,
        counters=status.counters,
        trading=status.trading,
        positions=client.list_positions(),
        strategies=client.list_strategies(),
        orders=client.list_order_history(),
        account=client.get_account(),
    )


def journaled_ticks(client: TradingClient) -> list[tuple[str, int]]:
    """(symbol, record seq) of every tick in the audit log's market-data records.

    Small messages may be journaled together as one MarketDataReceived record,
    so ticks are counted from each record's payload, not by record."""
    found: list[tuple[str, int]] = []
    for record in client.query_audit(event_types=["MarketDataReceived"]):
        payload = json.loads(record.payload_json)
        found.extend((symbol, record.seq) for symbol in decode_batch(payload["batch"]).symbols)
    return found


LogRow = tuple[int, str, str, int, str, str, str]


def comparable_log(client: TradingClient) -> list[LogRow]:
    """Every record of the audit log, as another log's can be compared with it:
    (seq, event type, payload, cause, symbol, order id, idea id), byte for byte
    but for the log's own identity. A log's id (it prefixes every client order id,
    so that no two logs send the same one to a broker) and the instance that wrote
    it are unique by design: they are named, not compared. Record times and hashes
    follow from them and from the wall clock, so they are left out."""
    records = list(client.query_audit())
    started = json.loads(records[0].payload_json)
    assert records[0].event_type == "ServiceStarted"
    own = {started["log_id"]: "LOG-ID", started["instance"]: "INSTANCE"}
    rows = []
    for r in records:
        fields = [r.payload_json, r.order_id, r.idea_id]
        for text, name in own.items():
            fields = [field.replace(text, name) for field in fields]
        payload, order_id, idea_id = fields
        rows.append((r.seq, r.event_type, payload, r.caused_by, r.symbol, order_id, idea_id))
    return rows
