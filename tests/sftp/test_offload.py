"""`Offload`: storage calls run on the loop while quick, in a thread while slow."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sftphook.sftp.offload import Offload


def _where(pause: float = 0.0) -> str:
    if pause:
        time.sleep(pause)
    return threading.current_thread().name


async def test_quick_calls_run_on_the_loop_and_slow_kinds_move_to_threads() -> None:
    loop_thread = threading.current_thread().name
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="io") as executor:
        # A budget far above a quick call's cost on a loaded machine, far below the slow one's.
        offload = Offload(executor, budget=0.02)
        assert await offload.run("stat", _where) == loop_thread
        # One call much slower than the budget: that kind goes to the threads...
        assert await offload.run("open_write", _where, 0.3) == loop_thread
        assert not offload.inline("open_write")
        assert (await offload.run("open_write", _where)).startswith("io")
        # ...while other kinds stay on the loop.
        assert await offload.run("stat", _where) == loop_thread
        # Quick calls, timed in the thread, bring it back.
        for _ in range(40):
            await offload.run("open_write", _where)
            if offload.inline("open_write"):
                break
        assert offload.inline("open_write")
        assert offload.cost("open_write") <= 0.02
        assert await offload.run("open_write", _where) == loop_thread


async def test_a_blocking_store_always_uses_the_threads() -> None:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="io") as executor:
        offload = Offload(executor, blocking=True)
        assert not offload.inline("stat")
        assert (await offload.run("stat", _where)).startswith("io")


async def test_errors_are_raised_wherever_the_call_ran() -> None:
    def missing() -> None:
        raise FileNotFoundError("no such file")

    with ThreadPoolExecutor(max_workers=1) as executor:
        for offload in (Offload(executor), Offload(executor, blocking=True)):
            with pytest.raises(FileNotFoundError, match="no such file"):
                await offload.run("stat", missing)
