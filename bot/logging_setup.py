"""Plain, one-line log records on stderr.

Log calls print request-derived values (paths, ids, messages) as they are; the one place
that makes them safe is :class:`OneLineFormatter`. In a record's message every control
character (CR, LF, ESC of an ANSI sequence, NUL...), Unicode line separator and lone
surrogate is written as a backslash escape, so a ``%0A`` in a URL cannot start a line of
its own or recolour a terminal. A traceback keeps its lines, each indented, so no line of
it can pass for a record either (a record starts at the line's first character).
"""

from __future__ import annotations

import logging
import re
from types import TracebackType

from aiohttp.web import RequestPayloadError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_UNSAFE_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_for_log(text: str) -> str:
    """``text`` on one line: control characters and the like as backslash escapes."""
    return _UNSAFE.sub(_escape, text)


class OneLineFormatter(logging.Formatter):
    """A record is one line; the lines of its traceback are indented."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        message = record.message
        record.message = escape_for_log(message)
        try:
            return super().formatMessage(record)
        finally:
            record.message = message

    def formatException(self, ei: ExcInfo) -> str:
        return _indent(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indent(super().formatStack(stack_info))


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in _UNSAFE_BUT_NEWLINE.sub(_escape, text).split("\n"))


class DropUndecodableBodies(logging.Filter):
    """aiohttp's "Unhandled exception" for a body that does not decode (a Content-Encoding
    that is not what it says): raised again when aiohttp drains the body after the side
    server already answered it 400, so the traceback says nothing new."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, RequestPayloadError)


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter(FORMAT, DATE_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    logging.getLogger("aiohttp.server").addFilter(DropUndecodableBodies())
    # aiogram logs every handled update at INFO; keep that for DEBUG runs.
    if level != "DEBUG":
        logging.getLogger("aiogram.event").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
