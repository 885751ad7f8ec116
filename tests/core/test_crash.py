"""Crash safety: the server process is killed with SIGKILL in the middle of a
stream, several times at different points, and restarted on the same database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta

import grpc
import pytest

from tests.support.market import SESSION_START, ticks, v_reversal
from tests.support.tools import REPO
from trading_sdk.client import TradingClient
from trading_sdk.v1 import market_pb2

pytestmark = pytest.mark.slow
TOKEN = "crash-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    def __init__(self, database_url: str) -> None:
        self.port = _free_port()
        env = {
            **os.environ,
            "TRADING_API_KEY": TOKEN,
            "TRADING_CLOCK": "event",
            "DATABASE_URL": database_url,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.main", "--listen", f"127.0.0.1:{self.port}"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.client = TradingClient(f"127.0.0.1:{self.port}", TOKEN)
        channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        try:
            grpc.channel_ready_future(channel).result(timeout=60)
        except grpc.FutureTimeoutError:
            self.proc.kill()
            stderr = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise AssertionError(f"server did not start: {stderr}") from None
        finally:
            channel.close()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.client.close()


def _batches(round_: int, count: int) -> list[list[market_pb2.MarketEvent]]:
    """Distinct ticks per round (a new day each), in messages of 20."""
    start = SESSION_START + timedelta(days=round_)
    path = v_reversal()
    prices = [path[k % len(path)] for k in range(count)]
    events = ticks("SPY", prices, start=start)  # a second apart
    return [events[i : i + 20] for i in range(0, len(events), 20)]


def _kill_mid_stream(server: ServerProcess, batches: list[list[market_pb2.MarketEvent]]) -> None:
    """Send `batches`, then hold the stream open until the process is dead."""
    sent, killed = threading.Event(), threading.Event()

    def messages() -> Iterator[list[market_pb2.MarketEvent]]:
        yield from batches
        sent.set()
        killed.wait(60)

    def killer() -> None:
        sent.wait(60)
        server.kill()
        killed.set()

    thread = threading.Thread(target=killer)
    thread.start()
    with pytest.raises(grpc.RpcError):
        server.client.stream_market_data(messages())
    thread.join()


def test_sigkill_mid_stream_loses_no_acknowledged_batch_and_keeps_the_chain(
    database_url: str,
) -> None:
    acknowledged: dict[int, str] = {}  # seq -> hash, for each summary the client saw
    for round_, kill_after in enumerate([3, 11, 25]):
        server = ServerProcess(database_url)
        client = server.client
        # An acknowledged stream: its summary promises everything up to last_seq is durable.
        summary = client.stream_market_data(_batches(round_, 140))
        [record] = list(client.query_audit(from_seq=summary.last_seq, to_seq=summary.last_seq))
        acknowledged[record.seq] = record.hash

        # A second stream is cut short by SIGKILL after `kill_after` messages.
        _kill_mid_stream(server, _batches(round_ + 100, 800)[:kill_after])

    server = ServerProcess(database_url)
    try:
        verdict = server.client.verify_audit()
        assert verdict.ok, verdict.reason
        seqs = [r.seq for r in server.client.query_audit()]
        assert seqs == list(range(1, len(seqs) + 1)), "sequence numbers have a gap"
        for seq, digest in acknowledged.items():
            [record] = list(server.client.query_audit(from_seq=seq, to_seq=seq))
            assert record.hash == digest, f"acknowledged record {seq} changed or vanished"
        # And the service still trades after all that.
        summary = server.client.stream_market_data(_batches(50, 140))
        assert summary.events_accepted == 140
    finally:
        server.kill()
