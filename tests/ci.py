"""What a test needs from the machine: skipped with the reason on a developer's machine, a
failure in CI (.ci/run sets STAMP_CI=1), where every tool the suite needs is installed."""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("STAMP_CI") == "1"


def require(condition: bool, reason: str) -> None:
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI needs this and does not have it: {reason}", pytrace=False)
    pytest.skip(reason)


def require_tool(*names: str) -> None:
    for name in names:
        require(shutil.which(name) is not None, f"{name} is not installed")
