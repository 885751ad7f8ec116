"""What the README shows a command printing is what it prints.

The README's `console` blocks are sample sessions: `$ command` and its output
(and its TOML block, the risk limits' file, is a file the service loads).
test_readme.py runs the commands of the `sh` blocks in the README's order; the
two sample sessions whose output is a figure or a message a reader checks
against, the backtest's summary and the refusal of a stream sent again under
another feed id, are run here on a state of their own and compared with what
the README shows.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from engines.risk.config import RiskConfig, load_risk_config
from tests.conftest import TOKEN, StartService
from tests.support.tools import REPO

README = REPO / "README.md"
BARS = "client/data/daily_bars.csv.gz"

pytestmark = pytest.mark.slow


def shown_after(command: str) -> list[str]:
    """The lines a console block shows after `$ command`."""
    text = README.read_text()
    start = text.index(f"\n$ {command}\n") + len(command) + 4
    return text[start : text.index("\n```", start)].splitlines()


def tradectl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "client.cli", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _table(lines: list[str]) -> dict[str, str]:
    """The rows of a rich two-column table, by their first cell."""
    rows = (re.fullmatch(r"│ (.+?) +│ (.+?) *│", line.strip()) for line in lines)
    return {row.group(1): row.group(2) for row in rows if row}


def test_the_backtest_prints_the_summary_the_readme_shows(tmp_path: Path) -> None:
    shown = _table(shown_after(f"tradectl backtest {BARS} --out var/report"))
    assert len(shown) >= 15, "the README's backtest table was not found"

    done = tradectl("backtest", BARS, "--out", str(tmp_path / "report"))

    assert done.returncode == 0, done.stderr
    assert _table(done.stdout.splitlines()) == shown
    assert (tmp_path / "report" / "report.html").is_file()


def test_a_stream_sent_again_under_another_feed_id_is_refused_as_the_readme_shows(
    start_service: StartService,
) -> None:
    (shown,) = shown_after(f"tradectl stream {BARS} --feed-id again")
    assert shown.endswith("; ...")
    running = start_service(trading_strategy_symbols=["AAPL", "GOOG", "IBM", "MSFT"])
    env = {"TRADING_API_KEY": TOKEN, "TRADING_TARGET": running.target}

    first = tradectl("stream", BARS, env=env)
    again = tradectl("stream", BARS, "--feed-id", "again", env=env)

    assert first.returncode == 0, first.stderr
    assert again.returncode == 2
    assert again.stderr.startswith(shown.removesuffix(" ..."))


def test_the_readme_risk_config_is_a_file_the_service_loads_and_holds_the_defaults(
    tmp_path: Path,
) -> None:
    """The README's TOML example lists every limit, each at its default."""
    text = README.read_text()
    start = text.index("```toml\n") + len("```toml\n")
    path = tmp_path / "risk.toml"
    path.write_text(text[start : text.index("```", start)])

    loaded = load_risk_config(path)

    assert loaded == RiskConfig()
    assert set(tomllib.loads(path.read_text())) == {f.name for f in fields(RiskConfig)}
