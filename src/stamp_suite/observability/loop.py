"""An asyncio loop in a daemon thread of its own, for the servers that answer outside the
packet loops (the metrics endpoint, the AgentX sub-agent)."""

from __future__ import annotations

import asyncio
import threading


class LoopThread:
    """Subclasses write ``main()``, which runs until ``self.stopping`` is set."""

    thread_name = "loop"

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.stopping: asyncio.Event | None = None

    async def main(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def start(self):
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self.stopping = asyncio.Event()
            ready.set()
            self._loop.run_until_complete(self.main())
            self._loop.close()

        self._thread = threading.Thread(target=run, name=self.thread_name, daemon=True)
        self._thread.start()
        ready.wait()
        return self

    def stop(self, timeout: float = 0.5) -> None:
        """Ask ``main()`` to finish and wait ``timeout`` at most: never hold up a stop longer
        (the thread is a daemon: it ends with the process)."""
        if self._loop is not None and self.stopping is not None:
            self._loop.call_soon_threadsafe(self.stopping.set)
        if self._thread is not None:
            self._thread.join(timeout)
