"""One asyncio loop on a daemon thread, for every MCP connection of a kernel session.

The ``mcp`` SDK is async; the kernel's main thread must stay the one that runs the agent loop
(signals, ``run_cell``). So connections live on this loop and the main thread waits on futures:
an interrupt or a timeout cancels the call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from typing import Any


class BackgroundLoop:
    """The loop thread starts on first use, and again in a forked child (heavy mode forks the
    kernel): a thread does not survive a fork, so the process that made the loop owns it."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._pid = os.getpid()

    @property
    def forked(self) -> bool:
        """True in a child forked after the loop was made (the loop is the parent's)."""
        return self._pid != os.getpid()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self.forked:
            self._loop, self._lock, self._pid = None, threading.Lock(), os.getpid()
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="k2nb-mcp", daemon=True)
                thread.start()
                self._loop = loop
            return self._loop

    def submit(self, coro: Any) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Any, timeout: float | None) -> Any:
        """Run ``coro`` on the loop and wait; a timeout or an interrupt cancels it."""
        future = self.submit(coro)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError from None
        except KeyboardInterrupt:
            future.cancel()
            raise
