"""What a test needs from the machine: skipped with the reason on a developer's machine, a
failure in CI (.ci/run sets STAMP_CI=1), where every tool the suite needs is installed."""

from __future__ import annotations

import importlib
import os
import shutil

import pytest

IN_CI = os.environ.get("STAMP_CI") == "1"


def require(condition: bool, reason: str) -> None:
    """Works in a test and at a module's top level (a whole module that needs one thing)."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI needs this and does not have it: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def require_tool(*names: str) -> None:
    for name in names:
        require(shutil.which(name) is not None, f"{name} is not installed")


def require_module(name: str):
    """``pytest.importorskip`` that fails in CI: the test extra installs every module the suite needs."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        require(False, f"Python module {name} is not importable ({exc})")


def have_tool(name: str) -> bool:
    """For an optional extra check inside a test: False on a developer's machine without the
    tool, a failure in CI."""
    if shutil.which(name):
        return True
    require(False, f"{name} is not installed")
    return False
