"""`trading-server`: start the service and run until SIGTERM or SIGINT.

Stopping: the first SIGTERM or SIGINT (Ctrl-C) starts a graceful shutdown. The
health service says NOT_SERVING for "" and for trading.v1.TradingService at
once; the server takes no new call; calls in flight get
TRADING_SHUTDOWN_GRACE_SECONDS (default 10) to finish, a stream its current
message and its summary if the client ends it, and are cancelled after that;
the audit store commits every queued row and closes, the anchors publish the
final head, and the process exits 0 (1 if the store had to leave rows
uncommitted).

A second signal exits at once with 128 + its number (130 for SIGINT, 143 for
SIGTERM). Whatever was acknowledged to a client is already committed; the
append-only log, committed a transaction at a time, ends at its last commit;
only rows never acknowledged are lost. A signal within 0.5 s of the first is
taken as a copy of it: a process-group kill under `make` delivers SIGTERM twice.

Exit status: 0 stopped cleanly; 1 could not start (another instance holds the
trading lease, the database cannot be opened), or stopped with audit rows left
uncommitted; 2 bad configuration or command line (missing or refused broker
credentials, a live endpoint without TRADING_LIVE=yes, TLS files that cannot be
used, plaintext on a non-loopback address without TRADING_ALLOW_PLAINTEXT=yes);
130 or 143 stopped at once by a second signal.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from types import FrameType

from pydantic import ValidationError

from audit.sql_store import redact_url
from brokers.base import BrokerConfigError
from domain.errors import DomainError, Unavailable
from server.bootstrap import Service, create_server, resolve_token
from server.settings import Settings
from server.tls import MODE_NAMES, TransportConfigError, transport_mode

log = logging.getLogger("trading-server")

EXIT_OK = 0
EXIT_FAILED = 1  # could not start, or the audit store closed with rows uncommitted
EXIT_USAGE = 2  # bad configuration (argparse also exits 2 on a bad command line)
# A second signal: 128 + the signal's number, as a shell reports a process it killed.
EXIT_SIGNAL_BASE = 128


# A signal this soon after the first is taken as a copy of it, not as "now": a
# supervisor that signals a whole process group (systemd, `kill -TERM -PGID`)
# reaches the server and its parent `make`, which passes SIGTERM on again.
REPEAT_WINDOW_SECONDS = 0.5


class _Signals:
    """The first SIGTERM/SIGINT asks for a graceful stop; a second exits at once."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.first: signal.Signals | None = None
        self._first_at = 0.0

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        sig = signal.Signals(signum)
        if self.first is None:
            self.first, self._first_at = sig, time.monotonic()
            self.stop.set()
            return
        if time.monotonic() - self._first_at < REPEAT_WINDOW_SECONDS:
            log.info(
                "%s again within %g s: taken as the same request", sig.name, REPEAT_WINDOW_SECONDS
            )
            return
        # Runs in the main thread, between bytecodes: nothing of the shutdown is
        # waited for. Rows acknowledged to a client are committed already; the
        # store's writer may be inside a transaction, which the database rolls
        # back whole, so the log ends at its last commit and its chain holds.
        log.warning("%s again: exiting at once (rows not yet committed are lost)", sig.name)
        logging.shutdown()
        sys.stderr.flush()
        os._exit(EXIT_SIGNAL_BASE + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="trading-server",
        description=__doc__.split("\n\n", 1)[0] if __doc__ else None,
        epilog="SIGTERM/SIGINT: graceful stop within TRADING_SHUTDOWN_GRACE_SECONDS; "
        "a second one exits at once (130 for SIGINT, 143 for SIGTERM).",
    )
    parser.add_argument(
        "--listen", help="HOST:PORT to serve on (default: TRADING_LISTEN or 127.0.0.1:50051)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"trading-server: bad configuration:\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    address = args.listen or settings.trading_listen
    # Before the (slow) build: a signal during start-up stops the service as soon
    # as it is up, and a second one still exits at once.
    signals = _Signals()
    signals.install()
    try:
        service = create_server(settings, address, token=resolve_token(settings))
    except (BrokerConfigError, TransportConfigError) as exc:  # the latter is a ValueError
        print(f"trading-server: bad configuration: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (DomainError, OSError, ValueError) as exc:
        print(f"trading-server: cannot start: {exc}", file=sys.stderr)
        return EXIT_FAILED
    _reload_tokens_on_sighup(service)
    service.server.start()
    log.info(
        "serving trading.v1.TradingService on %s over %s (clock=%s, broker=%s, audit=%s)",
        address.rsplit(":", 1)[0] + f":{service.port}",
        MODE_NAMES[transport_mode(settings)],
        settings.trading_clock,
        service.core.execution.broker_name,
        redact_url(settings.database_url),
    )
    signals.stop.wait()
    name = signals.first.name if signals.first is not None else "signal"
    grace = settings.trading_shutdown_grace_seconds
    log.info(
        "%s: shutting down; health NOT_SERVING, no new calls, calls in flight have %g s "
        "to finish (a second signal exits at once)",
        name,
        grace,
    )
    return _shut_down(service, grace)


def _reload_tokens_on_sighup(service: Service) -> None:
    """SIGHUP reads the tokens file again now. The file is also read again on the
    first call after it changes; the signal is for an operator who wants it done
    now, or whose editor kept the file's size and time."""
    if not hasattr(signal, "SIGHUP"):
        return

    def reload(_signum: int, _frame: FrameType | None) -> None:
        # Off the signal handler: reading a file there could interrupt a lock holder.
        threading.Thread(target=service.auth.reload, name="tokens-reload", daemon=True).start()

    signal.signal(signal.SIGHUP, reload)


def _shut_down(service: Service, grace: float) -> int:
    """Service.stop on a thread of its own, so that the main thread stays free to
    run the handler of a second signal however the shutdown is waiting."""
    outcome: list[int] = []

    def run() -> None:
        try:
            service.stop(grace)
        except Unavailable as exc:
            log.error("shutdown: %s", exc)
            outcome.append(EXIT_FAILED)
        except Exception:
            log.exception("shutdown failed")
            outcome.append(EXIT_FAILED)
        else:
            outcome.append(EXIT_OK)

    thread = threading.Thread(target=run, name="shutdown", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)
    status = outcome[0] if outcome else EXIT_FAILED
    log.info("stopped (exit %d)", status)
    return status


if __name__ == "__main__":
    sys.exit(main())
