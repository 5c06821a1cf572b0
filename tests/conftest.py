"""Make tests/vectors.py and tests/integration/helpers.py importable from every test, run
the reflector's tests on both socket paths (``reflector_io``), and run a test marked
``alone`` with no other test beside it."""

import fcntl
import os
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


@pytest.fixture(params=IO_PATHS)
def sender_io(request, monkeypatch):
    """Senders the test runs in this process use this path: batched, replies are read with
    recvmmsg and the packets they ask for leave together by sendmmsg."""
    if request.param == "unbatched":
        monkeypatch.setattr(udp, "_MmsgBatch", None)
    return request.param



@pytest.fixture(autouse=True)
def _alone_when_marked(request, tmp_path_factory):
    """The suite runs on several pytest-xdist workers; a test marked ``alone`` (it judges
    timing or a schedule) runs while no other test does.  A readers-writer lock over two
    flock(2) files that every worker sees: the gate is held by whoever is queuing for the
    lock, so a waiting ``alone`` test is not starved by the other workers' stream of tests."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        yield
        return
    shared = tmp_path_factory.getbasetemp().parent  # one directory for all workers of a run
    alone = request.node.get_closest_marker("alone") is not None
    with open(shared / "alone.gate", "a") as gate, open(shared / "alone.lock", "a") as lock:
        fcntl.flock(gate, fcntl.LOCK_EX)
        fcntl.flock(lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        if not alone:
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            fcntl.flock(gate, fcntl.LOCK_UN)


def pytest_collection_modifyitems(items):
    """The ``alone`` tests first: they then queue for the lock while little else runs, instead of
    each draining every worker in the middle of the suite (one drain waits for the slowest test
    running then: about half a minute over a run)."""
    items.sort(key=lambda item: item.get_closest_marker("alone") is None)
