"""The example in docs/api.md runs as written."""

import re
from pathlib import Path

import pytest

from stamp_suite.api import run_session
from stamp_suite.config import ConfigError

DOC = Path(__file__).parents[2] / "docs" / "api.md"


def test_api_doc_example_runs():
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    exec(compile(code, str(DOC), "exec"), {})


def test_api_validates_settings():
    with pytest.raises(ConfigError):
        run_session("127.0.0.1", 9, dscp=99)
