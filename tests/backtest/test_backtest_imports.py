"""`tradectl backtest` starts without what only the service needs.

A backtest builds the service's own core (server/bootstrap.build_core) on an
in-memory log, so it must not pay for the SQL store, Alembic, the trading lease
or TLS at start-up: importing them was a third of a cold backtest's time. What
each command loads is behaviour a user waits for; its speed is in `make bench`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.tools import REPO

SERVICE_ONLY = ("sqlalchemy", "alembic", "psycopg", "cryptography", "audit.lease", "server.tls")

PROGRAM = """
import contextlib, io, json, sys
from client.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    status = main(["--json", "backtest", sys.argv[1]])
summary = json.loads(out.getvalue())
print(json.dumps({"status": status, "summary": summary, "modules": sorted(sys.modules)}))
"""


def test_a_backtest_on_the_default_memory_log_loads_no_sql_lease_or_tls(tmp_path: Path) -> None:
    data = tmp_path / "spy.csv"
    rows = [
        f"SPY,2024-03-05T{14 + m // 60:02d}:{m % 60:02d}:00Z,{100 + (m % 7)}" for m in range(31, 91)
    ]
    data.write_text("symbol,timestamp,price\n" + "\n".join(rows) + "\n")

    ran = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(data)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert ran.returncode == 0, ran.stderr
    out = json.loads(ran.stdout)
    assert out["status"] == 0
    assert out["summary"]["points"] == 60
    loaded = [m for m in out["modules"] if m.split(".")[0] in SERVICE_ONLY or m in SERVICE_ONLY]
    assert loaded == []
