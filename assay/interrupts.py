"""Ctrl-C at a safe point of a loop: :func:`deferred_interrupt`.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be when SIGINT arrives. Inside
a finalizer or a weakref callback (numba's, h5py's, the garbage collector's) it is printed as
"Exception ignored" and lost, and the command runs on to exit 0 as if nothing had been pressed. A loop
that writes its progress (generation batches, boosting trees) takes the interrupt at a point of its
own instead.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["deferred_interrupt"]


@contextmanager
def deferred_interrupt() -> Iterator[Callable[[], None]]:
    """Within the block a first Ctrl-C only sets a flag; the yielded ``check()`` raises
    ``KeyboardInterrupt`` if one came (call it between kernel calls), and so does leaving the block.
    A second Ctrl-C interrupts at once. Outside the main thread, or under a SIGINT handler other
    than Python's default, nothing changes and ``check()`` does nothing.

    Example:
        >>> with deferred_interrupt() as check:
        ...     for tree in range(3):
        ...         check()
    """
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield lambda: None
        return
    pending: list[int] = []

    def note(signum, _frame) -> None:
        pending.append(signum)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def check() -> None:
        if pending:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, note)
    try:
        yield check
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    check()
