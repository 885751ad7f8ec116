"""The repository and the virtualenv's programs, for tests that run processes
(`trading-server`, `tradectl`, grpcurl, lint-imports) as a user would."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Final

# The repository's root: the working directory of the processes the tests start.
REPO: Final = Path(__file__).resolve().parents[2]


def venv_tool(name: str) -> Path:
    """An executable installed in the same virtualenv as the running Python."""
    path = Path(sys.executable).with_name(name)
    assert path.exists(), f"{name} is not installed next to {sys.executable}"
    return path
