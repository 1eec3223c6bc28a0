"""The child process of `services.extraction.extract_isolated` (ADR 0031).

    python -m services.extraction_child MEMORY_MB CPU_SECONDS < header-line + bytes

1. Limits CPU time (CPU_SECONDS), file writes (none) and core dumps (none).
2. Reads a JSON header line (`{"filename_hint": ...}`) and the document's bytes from stdin,
   detects the type and imports that type's parser.
3. Forks. The parser process limits its address space to MEMORY_MB, parses, and writes its
   reply to a pipe. This process waits for it with `os.wait4`, whose resource usage tells a
   parser that died of the memory limit (PDFium aborts when an allocation fails) from one that
   crashed for another reason.
4. Writes one JSON object to stdout: `{"ok": <Extracted>}` or
   `{"error": {"code": ..., "message": ...}}`.

Anything a library prints goes to stderr: file descriptor 1 points at stderr while parsing, so
only the reply reaches the parent's pipe.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any

from base.errors import DomainError

Prepare = Callable[[bytes, "str | None"], None]
Parser = Callable[[bytes, "str | None"], dict[str, Any]]

# A parser killed by a signal after its resident memory reached this share of the limit is
# taken to have died of the limit.
MEMORY_DEATH_SHARE = 0.5


def serve(prepare: Prepare, parser: Parser, argv: list[str]) -> int:
    """Steps 1-4 above. Shared by the real child and the tests' hostile children."""
    memory_mb, cpu_seconds = int(argv[0]), int(argv[1])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    reply_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints, Python's or C's, go to stderr
    stdin = sys.stdin.buffer
    header = json.loads(stdin.readline())
    hint = header.get("filename_hint")
    data = stdin.read()
    try:
        prepare(data, hint)
    except DomainError as exc:
        reply: dict[str, Any] = _error(exc.code, exc.message)
    else:
        reply = _parse_in_fork(parser, data, hint, memory_mb)
    with os.fdopen(reply_fd, "w", encoding="utf-8") as out:
        json.dump(reply, out, ensure_ascii=False)
    return 0


def _parse_in_fork(parser: Parser, data: bytes, hint: str | None, memory_mb: int) -> dict[str, Any]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the parser process
        os.close(read_end)
        status = 0
        try:
            memory = memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
            try:
                reply: dict[str, Any] = {"ok": parser(data, hint)}
            except DomainError as exc:
                reply = _error(exc.code, exc.message)
            except MemoryError:
                reply = _too_large(memory_mb)
            with os.fdopen(write_end, "w", encoding="utf-8") as out:
                json.dump(reply, out, ensure_ascii=False)
        except BaseException:
            traceback.print_exc()
            status = 1
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        raw = pipe.read()
    _, status, usage = os.wait4(pid, 0)
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        if number == signal.SIGXCPU:
            return _error("EXTRACTION_TIMEOUT", "Reading the document took too long.")
        if usage.ru_maxrss * 1024 >= MEMORY_DEATH_SHARE * memory_mb * 1024 * 1024:
            return _too_large(memory_mb)
        name = signal.Signals(number).name
        return _error("EXTRACTION_FAILED", f"The document could not be read (the parser {name}).")
    try:
        parsed: dict[str, Any] = json.loads(raw)
    except ValueError:
        return _error("EXTRACTION_FAILED", "The document could not be read.")
    return parsed


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _too_large(memory_mb: int) -> dict[str, Any]:
    return _error(
        "EXTRACTION_TOO_LARGE",
        f"Reading the document needed more than the {memory_mb} MB of memory allowed.",
    )


def load_parser(data: bytes, filename_hint: str | None) -> None:
    from services.extraction import detect_type, load_parser

    load_parser(detect_type(data, filename_hint))


def parse_to_json(data: bytes, filename_hint: str | None) -> dict[str, Any]:
    from services.extraction import parse

    return parse(data, filename_hint).to_json()


if __name__ == "__main__":
    sys.exit(serve(load_parser, parse_to_json, sys.argv[1:]))
