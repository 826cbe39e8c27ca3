"""The CLI's two outputs: lines for people on stderr, JSON for machines on stdout.

A reader that went away (``| head``, ``2>&1 | head``, a closed file) stops the printing,
never the work: orders in flight settle and are journalled all the same, and the exit code
stays the batch's own.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, TextIO

import msgspec

__all__ = ["say", "silence", "stderr_gone", "write_json"]


def say(text: str, stream: TextIO | None = None) -> None:
    """A line for people, on stderr (or ``stream``)."""
    target = stream or sys.stderr
    try:
        print(text, file=target, flush=True)
    except (BrokenPipeError, ValueError):  # EPIPE, or a closed file: nobody reads any more
        silence(target)
    except OSError:
        pass  # this line is lost (EIO, a full disk); the next one may get through


def stderr_gone() -> None:
    """The progress line could not be drawn: stderr's reader went away."""
    silence(sys.stderr)


def silence(stream: TextIO) -> None:
    """Point a stream nobody reads any more at /dev/null, so that neither a later write nor
    Python's flush at exit can fail on it again."""
    with contextlib.suppress(OSError, ValueError):  # no file descriptor (closed, captured)
        fd = stream.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)


class _Stdout:
    """Machine output; once its reader went away, nothing more is written to it."""

    closed = False


def write_json(value: Any) -> None:
    """One JSON document per line on stdout."""
    if _Stdout.closed:
        return
    try:
        sys.stdout.write(msgspec.json.encode(value).decode() + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        _Stdout.closed = True
        silence(sys.stdout)  # Python flushes stdout at exit: that cannot fail again
