"""Backtest data files: what is read, and every kind of bad file refused with the
file's line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from client.backtest.data import DataError, load_market_data, parse_columns
from client.cli import main

START = datetime(2024, 3, 5, 14, 31, tzinfo=UTC)


def _file(folder: Path, text: str, name: str = "data.csv") -> Path:
    path = folder / name
    path.write_text(text)
    return path


GOOD = """symbol,timestamp,price,volume
AAPL,2024-03-05T14:31:00Z,170.5,100
MSFT,2024-03-05T14:31:00Z,400.25,50
AAPL,2024-03-05T14:32:00Z,171,0
"""


def test_columns_match_case_insensitively_and_symbols_merge_in_time_order(tmp_path: Path) -> None:
    data = load_market_data(_file(tmp_path, GOOD.replace("symbol,timestamp", "SYMBOL,TimeStamp")))
    assert data.symbols.tolist() == ["AAPL", "MSFT", "AAPL"]
    assert data.prices.tolist() == [170.5, 400.25, 171.0]
    assert data.timestamps_ns.tolist()[-1] == int((START + timedelta(minutes=1)).timestamp() * 1e9)


def test_columns_can_be_mapped_and_a_single_symbol_named(tmp_path: Path) -> None:
    path = _file(tmp_path, "When,Last,Shares\n2024-03-05T09:31:00-05:00,10,5\n")
    with pytest.raises(DataError, match=r"missing column.*timestamp"):
        load_market_data(path)
    data = load_market_data(
        path, columns=parse_columns("timestamp=When,price=Last,volume=Shares"), symbol="xyz"
    )
    assert data.symbols.tolist() == ["XYZ"]
    assert data.timestamps_ns.tolist() == [int(START.timestamp() * 1e9)]
    assert data.volumes.tolist() == [5.0]
    with pytest.raises(DataError, match="no column 'Price'"):
        load_market_data(path, columns={"price": "Price"})
    with pytest.raises(DataError, match="COLUMN=NAME"):
        parse_columns("cost=Last")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "cannot read it|no rows"),
        ("symbol,timestamp,price\n", "no rows"),
        ("symbol,price\nAAPL,1\n", "missing column.*timestamp"),
        ("symbol,timestamp,price\nAAPL,2024-03-05T14:31:00Z,abc\n", "line 2: price 'abc'"),
        ("symbol,timestamp,price\nAAPL,2024-03-05T14:31:00Z,\n", "line 2: price"),
        ("symbol,timestamp,price\nAAPL,2024-03-05T14:31:00Z,nan\n", "line 2: price"),
        ("symbol,timestamp,price\nAAPL,2024-03-05T14:31:00Z,-1\n", "line 2: price '-1' is outside"),
        ("symbol,timestamp,price\nAAPL,2024-03-05T14:31:00Z,1e300\n", "outside the price domain"),
        (
            "symbol,timestamp,price,volume\nA,2024-03-05T14:31:00Z,1,1\nA,2024-03-05T14:32:00Z,1,-5\n",
            "line 3: volume '-5'",
        ),
        ("symbol,timestamp,price\nAAPL,yesterday,1\n", "line 2: 'yesterday' is not a time stamp"),
        ("symbol,timestamp,price\nAAPL,2024-03-05T14:31:00,1\n", "no UTC offset"),
        ("symbol,timestamp,price\nAA PL,2024-03-05T14:31:00Z,1\n", "line 2: symbol 'AA PL'"),
        (
            "symbol,timestamp,price\nA,2024-03-05T14:32:00Z,1\nB,2024-03-05T14:30:00Z,1\n"
            "A,2024-03-05T14:31:00Z,1\n",
            "line 4: A's time stamp is older than line 2",
        ),
        (
            "symbol,timestamp,price\nA,2024-03-05T14:31:00Z,1\nA,2024-03-05T14:31:00Z,2\n",
            "line 3: A's time stamp repeats the time of line 2",
        ),
        ("symbol,timestamp,price\nA,2024-03-09,1\n", "line 2: 2024-03-09 is not a trading session"),
        (
            "symbol,timestamp,price\nA,2024-03-05,1\nA,2024-03-06T14:31:00Z,1\n",
            "line 2: '2024-03-05' is a date, but other rows have times",
        ),
    ],
)
def test_a_bad_file_is_refused_naming_its_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_market_data(_file(tmp_path, text))


def test_a_zone_can_be_given_for_naive_times(tmp_path: Path) -> None:
    path = _file(tmp_path, "symbol,timestamp,price\nA,2024-03-05 09:31:00,1\n")
    data = load_market_data(path, timezone="America/New_York")
    assert data.timestamps_ns.tolist() == [int(START.timestamp() * 1e9)]


def test_a_date_alone_is_stamped_a_minute_before_the_close(tmp_path: Path) -> None:
    # 2024-03-05 closes at 16:00 New York (21:00 UTC); 2024-11-29 closes early at 13:00.
    path = _file(tmp_path, "symbol,date,close\nA,2024-03-05,1\nA,2024-11-29,2\n")
    stamps = load_market_data(path).timestamps_ns.tolist()
    assert [datetime.fromtimestamp(s / 1e9, UTC) for s in stamps] == [
        datetime(2024, 3, 5, 20, 59, tzinfo=UTC),
        datetime(2024, 11, 29, 17, 59, tzinfo=UTC),
    ]


def test_parquet_is_read_and_a_bad_row_named(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "Ticker": ["A", "A", "A"],
            "Timestamp": pd.to_datetime(
                ["2024-03-05T14:31Z", "2024-03-05T14:32Z", "2024-03-05T14:33Z"], utc=True
            ),
            "Close": [1.0, 2.0, 3.0],
        }
    )
    path = tmp_path / "bars.parquet"
    frame.to_parquet(path)
    data = load_market_data(path)
    assert data.prices.tolist() == [1.0, 2.0, 3.0]
    frame.loc[1, "Close"] = float("inf")
    frame.to_parquet(path)
    with pytest.raises(DataError, match=r"row 2: price .*inf"):
        load_market_data(path)


def test_tradectl_names_the_line_in_one_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _file(tmp_path, "symbol,timestamp,price\nA,2024-03-05T14:31:00Z,x\n")
    assert main(["backtest", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"{path}: line 2: price 'x'" in error


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["A", "BB", "C.D"]),
            st.integers(1, 10_000_000),  # seconds after START
            st.floats(1e-4, 1e7, allow_nan=False),
            st.floats(0, 1e12, allow_nan=False),
        ),
        min_size=1,
        max_size=60,
        unique_by=lambda row: (row[0], row[1]),
    )
)
def test_any_valid_file_reads_back_exactly(
    tmp_path: Path, rows: list[tuple[str, int, float, float]]
) -> None:
    # Each symbol's rows in time order in the file, symbols grouped.
    rows = sorted(rows, key=lambda r: (r[0], r[1]))
    lines = ["symbol,timestamp,price,volume"] + [
        f"{s},{(START + timedelta(seconds=t)).isoformat()},{p!r},{v!r}" for s, t, p, v in rows
    ]
    data = load_market_data(_file(tmp_path, "\n".join(lines) + "\n"))
    expected = sorted(
        ((int((START + timedelta(seconds=t)).timestamp()) * 10**9, s, p, v) for s, t, p, v in rows)
    )
    got = list(
        zip(
            data.timestamps_ns.tolist(),
            data.symbols.tolist(),
            data.prices.tolist(),
            data.volumes.tolist(),
            strict=True,
        )
    )
    assert got == expected
    assert np.all(np.diff(data.timestamps_ns) >= 0)
