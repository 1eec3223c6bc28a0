"""A child for `services.extraction.run_child` whose parser misbehaves on purpose.

It runs the real harness (`services.extraction_child.serve`: limits, fork, wait4, reply); only
the parser differs, chosen by the file-name hint:

- "sleep": blocks without using CPU (only the parent's deadline can end it);
- "segfault": kills itself with SIGSEGV (a crash in native code);
- "allocate": allocates until the address-space limit raises MemoryError;
- "noisy": prints to file descriptor 1 from C and from Python, then succeeds.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from typing import Any

from services.extraction_child import serve


def prepare(data: bytes, filename_hint: str | None) -> None:
    return None


def parse(data: bytes, filename_hint: str | None) -> dict[str, Any]:
    if filename_hint == "sleep":
        time.sleep(3600)
    elif filename_hint == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif filename_hint == "allocate":
        blocks = []
        while True:
            blocks.append(bytearray(16 * 1024 * 1024))
    elif filename_hint == "noisy":
        print("printed by Python")
        sys.stdout.flush()
        ctypes.CDLL(None).puts(b"printed by C")
        ctypes.CDLL(None).fflush(None)
    return {"echo": data.decode()}


if __name__ == "__main__":
    sys.exit(serve(prepare, parse, sys.argv[1:]))
