"""The AAPL path the advisor is asked about (by the advisor tests and the fuzzer).

AAPL is not one of the crossover strategy's symbols, so with these ticks the only
orders are the ones an approved idea leads to.
"""

from __future__ import annotations

from typing import Final

from tests.support.market import SECOND, SESSION

SYMBOL: Final = "AAPL"
# 40 prices rising from 180 to 190; sent with `ticks`, a second apart from SESSION.
RISING: Final = [180.0 + 10.0 * i / 39 for i in range(40)]
# The time of RISING's last tick, SESSION + 39 s: ideas are dated from it.
LAST_TICK: Final = SESSION + (len(RISING) - 1) * SECOND
