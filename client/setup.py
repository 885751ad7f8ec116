"""The SDK's build (its metadata is in pyproject.toml): a wheel or sdist without the
generated code would install and then fail on its first import, so building one
is refused until `make proto` has run. An editable install (`make setup`) comes
before the code is generated, and needs none."""

import sys
from pathlib import Path

from setuptools import setup

GENERATED = Path(__file__).resolve().parent / "trading_sdk" / "v1"

if {"bdist_wheel", "sdist"} & set(sys.argv) and not any(GENERATED.glob("*_pb2.py")):
    sys.exit(
        f"trading-sdk: {GENERATED} holds no generated code; run `make sdk` (or `make proto`) "
        "in the repository first"
    )
setup()
