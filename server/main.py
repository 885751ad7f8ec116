"""`trading-server`: start the service and run until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from pydantic import ValidationError

from audit.sql_store import redact_url
from domain.errors import DomainError
from server.bootstrap import create_server, resolve_token
from server.settings import Settings

log = logging.getLogger("trading-server")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="trading-server", description=__doc__)
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
        return 2
    address = args.listen or settings.trading_listen
    try:
        service = create_server(settings, address, token=resolve_token(settings))
    except (DomainError, OSError, ValueError) as exc:
        print(f"trading-server: cannot start: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    service.server.start()
    log.info(
        "serving trading.v1.TradingService on %s (clock=%s, broker=%s, audit=%s)",
        address.rsplit(":", 1)[0] + f":{service.port}",
        settings.trading_clock,
        service.core.execution.broker_name,
        redact_url(settings.database_url),
    )
    stop.wait()
    log.info("stopping")
    service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
