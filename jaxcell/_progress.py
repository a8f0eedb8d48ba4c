"""Progress reporting for long command-line steps (never used inside traced code)."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator


@contextlib.contextmanager
def stage(message: str, *, every: float = 3.0, stream=None) -> Iterator[None]:
    """Print ``message``, a heartbeat every ``every`` seconds, and the elapsed time.

    Example:
        >>> import io
        >>> buf = io.StringIO()
        >>> with stage("adding", stream=buf):
        ...     _ = 1 + 1
        >>> buf.getvalue().startswith("adding ...")
        True
    """
    out = sys.stderr if stream is None else stream
    start = time.perf_counter()
    print(f"{message} ...", file=out, flush=True)
    done = threading.Event()

    def beat():
        while not done.wait(every):
            print(f"  ... still working ({time.perf_counter() - start:.0f} s)",
                  file=out, flush=True)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        print(f"  done in {time.perf_counter() - start:.2f} s", file=out, flush=True)
