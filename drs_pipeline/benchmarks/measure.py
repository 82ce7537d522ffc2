"""One measurement in a fresh process, so that its peak RSS is its own.

``ru_maxrss`` is the high-water mark of the whole process: measured in the
benchmark's own process it would include every earlier scenario (and the
bench's imports of everything). A spawned process starts clean, imports what
the pipeline imports, runs one measurement and reports its peak with it.
"""

from __future__ import annotations

import multiprocessing
import resource
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

Result = dict[str, Any]


def in_fresh_process(function: Callable[..., Result], *args: Any) -> Result:
    """``function(*args)`` in a spawned process, with ``peak_rss_bytes`` added.

    ``function`` must be importable (module level); its arguments are pickled.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, function, args), daemon=True)
    process.start()
    sender.close()
    try:
        outcome: tuple[str, Any] = receiver.recv()
    except EOFError:
        outcome = ("error", f"measurement process died (exit code {process.exitcode})")
    finally:
        process.join()
        receiver.close()
    kind, value = outcome
    if kind == "error":
        raise RuntimeError(f"{getattr(function, '__name__', function)} failed:\n{value}")
    result: Result = value
    return result


def _child(sender: Connection, function: Callable[..., Result], args: tuple[Any, ...]) -> None:
    try:
        result = dict(function(*args))
        # Linux reports kilobytes.
        result["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        sender.send(("ok", result))
    except BaseException:
        sender.send(("error", traceback.format_exc()))
    finally:
        sender.close()
