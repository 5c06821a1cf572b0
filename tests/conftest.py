"""Make tests/vectors.py and tests/integration/helpers.py importable from every test, and run
the reflector's tests on both socket paths (``reflector_io``)."""

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
for p in (HERE, HERE / "integration", HERE / "system", HERE.parent / "fuzz"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from stamp_suite.net import udp  # noqa: E402

# The batched path (recvmmsg/sendmmsg) exists where the C extension was built; the standard
# socket module's path always does.  A module that says pytestmark = usefixtures("reflector_io")
# runs every test on each.
IO_PATHS = (["batched"] if udp._MmsgBatch is not None else []) + ["unbatched"]


def pytest_generate_tests(metafunc):
    if "reflector_io" in metafunc.fixturenames:
        metafunc.parametrize("reflector_io", IO_PATHS, indirect=True)


@pytest.fixture
def reflector_io(request, monkeypatch):
    """Reflectors started by the test (subprocesses, namespaces, in-process) use this path."""
    if request.param == "unbatched":
        import helpers
        monkeypatch.setenv("STAMP_SUITE_BATCH_IO", "off")
        monkeypatch.setitem(helpers.ENV, "STAMP_SUITE_BATCH_IO", "off")
        monkeypatch.setattr(udp, "_MmsgBatch", None)
    return request.param

