"""The SDK as a library people install: its wheel, alone in a fresh virtual
environment, drives a running server.

This is the README's `make sdk` and `pip install dist/trading_sdk-...whl`: the
wheel is built from client/ exactly as `make sdk` builds it, installed with
nothing but its own dependencies (pip fetches grpcio, protobuf and
grpcio-status from the package index, or its cache), and a program run by that
environment's interpreter, isolated from this checkout, trades through it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.conftest import TOKEN, StartService
from tests.support.tools import REPO

pytestmark = pytest.mark.slow

# What a user's environment may hold after installing the SDK: the SDK, the
# three dependencies it declares, what those pull in, and what a venv starts with.
ALLOWED = {
    "trading-sdk",
    "grpcio",
    "protobuf",
    "grpcio-status",
    "googleapis-common-protos",
    "typing-extensions",
    "pip",
    "setuptools",
}
# As `make sdk` builds it: with this venv's setuptools, nothing downloaded.
PIP_WHEEL = (sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation")
SERVER_ONLY = ("server", "client", "domain", "engines", "brokers", "audit", "trading")

PROGRAM = textwrap.dedent(
    """
    import json, sys
    from datetime import datetime, timedelta, timezone

    import grpc
    import trading_sdk
    from trading_sdk import TradingClient, error_info, market_event
    from trading_sdk.v1 import orders_pb2

    target, token = sys.argv[1], sys.argv[2]
    start = datetime(2024, 3, 5, 15, 0, tzinfo=timezone.utc)  # a Tuesday, 10:00 New York
    out = {"sdk": trading_sdk.__file__, "modules": sorted(sys.modules)}
    with TradingClient(target, token) as client:
        out["status_type"] = type(client.get_status()).__module__
        ticks = [market_event("SPY", 500.0, 100, start + timedelta(seconds=k)) for k in range(3)]
        out["accepted"] = client.stream_market_data([ticks]).events_accepted
        placed = client.submit_order("SPY", "buy", 2, reason="from the wheel")
        out["approved"] = placed.decision.approved
        out["status"] = orders_pb2.OrderStatus.Name(placed.order.status)
        out["positions"] = {p.symbol: p.quantity for p in client.list_positions().positions}
        later = start + timedelta(seconds=5)
        bad = [market_event("SPY", 501.0, 1, later), market_event("SPY", float("nan"), 1, later)]
        try:
            client.stream_market_data([bad])
        except grpc.RpcError as error:
            info = error_info(error)
            out["refused"] = [error.code().name, info.reason if info else None]
        try:
            client.stream_arrays("SPY", [1], [1.0], [1.0])
        except ModuleNotFoundError as error:
            out["without_numpy"] = str(error)
    with TradingClient(target, "not-a-key") as stranger:
        try:
            stranger.get_status()
        except grpc.RpcError as error:
            out["stranger"] = error.code().name
    print(json.dumps(out))
    """
)


def _sdk_source(folder: Path, *, generated: bool = True) -> Path:
    """A copy of the SDK's own files (with or without the generated code)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("pyproject.toml", "setup.py"):
        shutil.copy2(REPO / "client" / name, folder)
    skipped = ["__pycache__", ".generated"] + ([] if generated else ["*_pb2*"])
    shutil.copytree(
        REPO / "client" / "trading_sdk",
        folder / "trading_sdk",
        ignore=shutil.ignore_patterns(*skipped),
    )
    return folder


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of the SDK's own files only, so it cannot lean on the
    rest of the checkout (and leaves no build folder in it)."""
    source = _sdk_source(tmp_path_factory.mktemp("sdk-source"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [*PIP_WHEEL, "--wheel-dir", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("trading_sdk-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_python(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    venv = tmp_path_factory.mktemp("user-env") / "venv"
    # venv builds on the interpreter .venv was made from: nothing of .venv carries over
    # (the test below checks what the new one holds).
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr
    yield python


def test_the_wheel_carries_one_import_root_with_the_generated_code_and_its_stubs(
    wheel: Path,
) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    roots = {name.split("/")[0] for name in names if not name.startswith("trading_sdk-")}

    assert roots == {"trading_sdk"}
    for module in ("trading_service", "market", "orders", "risk", "events", "audit", "advisor"):
        assert f"trading_sdk/v1/{module}_pb2.py" in names
        assert f"trading_sdk/v1/{module}_pb2.pyi" in names
    assert "trading_sdk/v1/trading_service_pb2_grpc.pyi" in names
    assert "trading_sdk/py.typed" in names
    metadata = zipfile.ZipFile(wheel).read(f"{wheel.name.split('-py3')[0]}.dist-info/METADATA")
    requires = {
        Requirement(line.split(":", 1)[1]).name
        for line in metadata.decode().splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    }
    assert requires == {"grpcio", "protobuf", "grpcio-status"}


def test_the_fresh_environment_holds_the_sdk_and_its_dependencies_only(
    fresh_python: Path,
) -> None:
    listed = subprocess.run(
        [str(fresh_python), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = {entry["name"].lower().replace("_", "-") for entry in json.loads(listed.stdout)}

    assert "trading-sdk" in names
    assert names <= ALLOWED, names - ALLOWED
    probe = "import sys, importlib.util as u; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    found = subprocess.run(
        [str(fresh_python), "-I", "-c", probe, *SERVER_ONLY],
        capture_output=True,
        text=True,
        check=True,
        cwd=fresh_python.parents[2],
    )
    assert found.stdout.strip() == "[]"


def test_a_program_in_the_fresh_environment_trades_through_a_running_server(
    fresh_python: Path, start_service: StartService
) -> None:
    running = start_service()
    ran = subprocess.run(
        [str(fresh_python), "-I", "-c", PROGRAM, running.target, TOKEN],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=fresh_python.parents[2],
    )
    assert ran.returncode == 0, ran.stderr
    out = json.loads(ran.stdout)

    assert Path(out["sdk"]).is_relative_to(fresh_python.parents[1])
    assert not [m for m in out["modules"] if m.split(".")[0] in SERVER_ONLY]
    assert out["status_type"] == "trading_sdk.v1.trading_service_pb2"
    assert out["accepted"] == 3
    assert out["approved"] is True
    assert out["status"] == "ORDER_STATUS_FILLED"
    assert out["positions"] == {"SPY": "2"}
    assert out["refused"] == ["INVALID_ARGUMENT", "MARKET_DATA_MESSAGE_REFUSED"]
    assert "pip install 'trading-sdk[columnar]'" in out["without_numpy"]
    assert out["stranger"] == "UNAUTHENTICATED"
    # The server saw the order as the wheel's program placed it.
    orders = running.client.list_order_history().orders
    assert [(o.symbol, o.quantity) for o in orders] == [("SPY", "2")]


def test_a_wheel_without_the_generated_code_is_refused_with_what_to_run(tmp_path: Path) -> None:
    source = _sdk_source(tmp_path / "source", generated=False)

    built = subprocess.run(
        [*PIP_WHEEL, "--wheel-dir", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert built.returncode != 0
    assert "holds no generated code; run `make sdk`" in built.stdout + built.stderr
    assert not list((tmp_path / "dist").glob("*.whl"))
