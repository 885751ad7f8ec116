"""Invariant 2: only execution touches the broker. Strategy and advisor code
cannot import broker or execution code, enforced by import-linter contracts
in pyproject.toml that this test runs, not by convention.

Three checks: the real contracts hold on the real code; the contract as
written does forbid what the invariant says; and the check can fail (the same
contract, run over a throwaway package tree with a forbidden import, breaks
and names the import), so a passing run means something.
"""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.support.tools import REPO, venv_tool

SOURCES = {"engines.strategy", "engines.advisor"}
FORBIDDEN = {"brokers", "engines.execution"}


def lint_imports(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports without its cache (which would be written into `cwd`)."""
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [str(venv_tool("lint-imports")), "--no-cache", "--no-logo", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _importlinter_config() -> dict[str, Any]:
    with (REPO / "pyproject.toml").open("rb") as file:
        config: dict[str, Any] = tomllib.load(file)["tool"]["importlinter"]
    return config


def _broker_contract() -> dict[str, Any]:
    """The contract that keeps strategy and advisor code away from the broker."""
    for contract in _importlinter_config()["contracts"]:
        if set(contract.get("source_modules", ())) >= SOURCES:
            return dict(contract)
    raise AssertionError(f"no import-linter contract has source_modules {sorted(SOURCES)}")


def test_the_contracts_forbid_broker_and_execution_code_to_strategy_and_advisor() -> None:
    contract = _broker_contract()
    assert contract["type"] == "forbidden"
    assert set(contract["forbidden_modules"]) >= FORBIDDEN
    # Indirect imports (strategy -> helper -> broker) count too.
    assert not contract.get("allow_indirect_imports", False)
    assert not contract.get("ignore_imports")
    for package in SOURCES:
        assert (REPO / package.replace(".", "/") / "__init__.py").exists(), package


def test_lint_imports_passes_on_the_repository() -> None:
    result = lint_imports(cwd=REPO)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "0 broken" in output
    assert _broker_contract()["name"] in output


def _write(root: Path, modules: dict[str, str]) -> None:
    """Create each dotted module (packages get an __init__.py) with its source."""
    for dotted, source in modules.items():
        parts = dotted.split(".")
        for depth in range(1, len(parts)):
            package = root.joinpath(*parts[:depth])
            package.mkdir(exist_ok=True)
            (package / "__init__.py").touch()
        (root.joinpath(*parts[:-1]) / f"{parts[-1]}.py").write_text(source)


def _throwaway_config(root: Path) -> Path:
    """The repository's broker contract, copied verbatim, over the throwaway tree."""
    contract = _broker_contract()
    lines = [
        "[tool.importlinter]",
        'root_packages = ["engines", "brokers"]',
        "",
        "[[tool.importlinter.contracts]]",
        *(f"{key} = {json.dumps(value)}" for key, value in contract.items()),
    ]
    path = root / "contracts.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """engines/{strategy,advisor,execution} and brokers, with only allowed imports."""
    root = tmp_path / "pkgroot"
    root.mkdir()
    _write(
        root,
        {
            "brokers.paper": "class PaperBroker: ...\n",
            "engines.execution.engine": "from brokers.paper import PaperBroker\n",
            "engines.strategy.sizing": "SIZE = 1\n",
            "engines.strategy.crossover": "from engines.strategy.sizing import SIZE\n",
            "engines.advisor.analyst": "from engines.strategy import sizing\n",
        },
    )
    return root


def test_the_contract_holds_on_a_clean_tree(tree: Path) -> None:
    result = lint_imports(str(_throwaway_config(tree)), cwd=tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "KEPT" in result.stdout


def test_the_contract_breaks_on_a_strategy_that_imports_a_broker(tree: Path) -> None:
    _write(tree, {"engines.strategy.bad": "from brokers.paper import PaperBroker\n"})
    result = lint_imports(str(_throwaway_config(tree)), cwd=tree)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert "engines.strategy.bad -> brokers.paper" in result.stdout


def test_the_contract_breaks_on_an_advisor_that_reaches_execution_indirectly(
    tree: Path,
) -> None:
    """advisor -> a strategy helper -> execution: forbidden though no line says it."""
    _write(
        tree,
        {
            "engines.strategy.shortcut": "import engines.execution.engine\n",
            "engines.advisor.sneaky": "from engines.strategy import shortcut\n",
        },
    )
    result = lint_imports(str(_throwaway_config(tree)), cwd=tree)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert "engines.advisor.sneaky -> engines.strategy.shortcut" in result.stdout
    assert "engines.execution" in result.stdout
