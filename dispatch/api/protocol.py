"""The API's HTTP/1.1 protocol: uvicorn's httptools protocol (llhttp) with bounds of its own.

llhttp parses all it is given and bounds nothing, and uvicorn's protocol queues every
pipelined request it parses. ``GuardedProtocol`` adds, per connection:

- a deadline on each request's headers (``header_timeout_s``), from the moment the server
  waits for them: 408, then the connection is closed (a slowloris holds nothing);
- a bound of ``MAX_HEADER_BYTES`` on a request's line, headers and trailers together, and on
  what arrives without finishing anything (an unfinished header or trailer is held by the
  parser itself, unseen until it ends): 431;
- at most ``MAX_PIPELINED`` requests queued behind the one being answered (503 for the
  next), and at most ``max_body_bytes`` of body held for queued requests (413);
- trailers counted but never added to the request's headers (a trailer must not pass for a
  header that was read, say ``X-Forwarded-For``);
- a request the parser cannot read: 400 with the parser's reason, never the request's bytes;
- no protocol upgrade (the API serves no WebSocket): a request that asks for one with a body
  is a 400 (llhttp would skip its body and read the body as the next request); one without
  a body is answered as plain HTTP/1.1, and then the connection is closed, nothing more
  parsed.

A refusal answers the request it concerns, in order: it is sent once the answers to the
requests before it have gone out, and the connection is then closed; from the refusal on,
what arrives is read and dropped, never parsed.
Each is counted by code in ``REFUSALS`` (``dispatch_api_protocol_refusals``) and logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from dispatch.api.errors import problem_body

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
# What reads that finish nothing may hold beyond the header bound: the request line's
# method and version, and each field's ": " and CRLF, which the header count leaves out.
FRAMING_SLACK = 1024
MAX_PIPELINED = 16

# Refusals by status code since the process started (every app of the process).
REFUSALS: Counter[str] = Counter()


def _refusal(status: str, error: str, reason: str) -> bytes:
    body = orjson.dumps(problem_body(error, reason))  # the API's error shape
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


TIMEOUT = _refusal("408 Request Timeout", "request_timeout", "request headers arrived too late")
TOO_LARGE = _refusal(
    "431 Request Header Fields Too Large",
    "headers_too_large",
    f"request line, headers and trailers over {MAX_HEADER_BYTES} bytes",
)
PIPELINE_FULL = _refusal(
    "503 Service Unavailable",
    "too_many_pipelined",
    f"over {MAX_PIPELINED} requests pipelined on one connection; send the rest on another",
)


def _queued_body_too_large(max_bytes: int) -> bytes:
    reason = f"the requests queued on this connection hold over {max_bytes} bytes of body"
    return _refusal("413 Content Too Large", "payload_too_large", reason)


UPGRADE_WITH_BODY = _refusal(
    "400 Bad Request",
    "bad_request",
    "a request with a body may not ask to upgrade the connection (Connection: Upgrade)",
)


def _bad_request(reason: str) -> bytes:
    return _refusal("400 Bad Request", "bad_request", reason)


class _Stop(Exception):
    """Raised from a parser callback, the refusal already chosen: the parser stops there."""


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds above."""

    header_timeout_s: float = 10.0
    max_body_bytes: int = 1024 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._in_headers = False  # the parser is in a request's line or headers
        self._in_body = False  # past a request's headers, before its end
        self._header_bytes = 0  # the line, headers and trailers of the request being read
        self._stalled_bytes = 0  # bytes of reads that finished nothing
        self._progressed = False
        self._running: RequestResponseCycle | None = None
        self._refusal: bytes | None = None  # chosen; sent once the answers before it are out
        self._upgrade_asked = False  # answered as plain HTTP, then nothing more is parsed

    # -- the connection ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        running = self._running  # uvicorn tells only the newest request, maybe a queued one
        if running is not None and not running.response_complete:
            running.disconnected = True
            running.message_event.set()
        super().connection_lost(exc)

    def _should_upgrade_to_ws(self) -> bool:
        return False  # the API serves no WebSocket (uvicorn's has none of these bounds)

    def data_received(self, data: bytes) -> None:
        if self._refusal is not None or self._upgrade_asked:
            return  # refused, or an upgrade was asked: nothing more is parsed
        self._unset_keepalive_if_required()
        self._progressed = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            return  # the request was answered as plain HTTP (on_headers_complete)
        except httptools.HttpParserError as exc:
            if self._refusal is None:  # the parser's own refusal, not a bound's (_Stop)
                log.warning("refused a malformed request: %s", exc)
                self._refuse(_bad_request(str(exc)))
            else:
                self._refuse(self._refusal)
            return
        if not self._progressed:
            self._stalled_bytes += len(data)
            if self._stalled_bytes > MAX_HEADER_BYTES + FRAMING_SLACK:
                self._refuse(TOO_LARGE)

    # -- parser callbacks ----------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers, self._header_bytes = True, 0

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        if self._in_headers:  # else a trailer: counted, and dropped
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._progress()
        self._in_headers = False
        self._disarm()  # the headers are in
        if self._in_flight() and len(self.pipeline) >= MAX_PIPELINED:
            self._stop(PIPELINE_FULL)
        if self.parser.should_upgrade():
            if _has_body(self.headers):
                self._stop(UPGRADE_WITH_BODY)
            self._upgrade_asked = True
        super().on_headers_complete()
        if self._upgrade_asked:
            self.cycle.keep_alive = False  # its answer closes the connection
        self._in_body = True

    def on_body(self, body: bytes) -> None:
        self._progress()
        if self.pipeline and self.pipeline[0][0] is self.cycle:  # a queued request's body
            held = sum(len(cycle.body) for cycle, _ in self.pipeline)
            if held + len(body) > self.max_body_bytes:
                self._stop(_queued_body_too_large(self.max_body_bytes))
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._progress()
        self._in_body = False
        super().on_message_complete()
        self._await_next()  # its answer may have gone out already

    def on_response_complete(self) -> None:
        super().on_response_complete()  # starts the next queued request, if any
        if self._refusal is not None:
            self._send_refusal_when_due()
        else:
            self._await_next()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        self._running = cycle
        super()._start_asgi_task(cycle, app)

    # -- bounds and refusals -------------------------------------------------------------
    def _progress(self) -> None:
        self._progressed, self._stalled_bytes = True, 0

    def _count(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > MAX_HEADER_BYTES:
            self._stop(TOO_LARGE)

    def _stop(self, refusal: bytes) -> None:
        self._refusal = refusal
        raise _Stop

    def _in_flight(self) -> bool:
        running = self._running
        return running is not None and not running.response_complete and not running.disconnected

    def _refuse(self, refusal: bytes) -> None:
        """Parse no more; the request being parsed gets ``refusal`` once the answers before
        it are out (a queued one is dropped unrun, a running one told its client left)."""
        self._refusal = refusal
        self._disarm()
        # Reading goes on (what arrives is dropped unparsed), resumed if a queued request had
        # paused it: closed with bytes unread, the socket would send a reset, which can
        # destroy the refusal before the client reads it.
        self.flow.resume_reading()
        cycle = self.cycle if self._in_body else None
        if cycle is not None:
            queued = [item for item in self.pipeline if item[0] is cycle]
            if queued:
                self.pipeline.remove(queued[0])
            elif not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()
        self._send_refusal_when_due()

    def _send_refusal_when_due(self) -> None:
        if self._refusal is None or self.pipeline or self._in_flight():
            return
        if not self.transport.is_closing():
            status = self._refusal[9:12].decode()
            REFUSALS[status] += 1
            if status != "400":  # a 400 is logged with the parser's reason where it arises
                level = logging.INFO if status == "408" else logging.WARNING
                log.log(level, "refused: %s", self._refusal.split(b"\r\n", 1)[0].decode())
            self._unset_keepalive_if_required()
            self.transport.write(self._refusal)
            self.transport.close()

    # -- the header deadline -------------------------------------------------------------
    def _await_next(self) -> None:
        """Nothing in flight, queued or half-read: the next request's headers are awaited
        (if some have arrived already, the deadline is theirs)."""
        if self.transport.is_closing() or self._refusal is not None:
            return
        if not self.pipeline and not self._in_body and not self._in_flight():
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        # Armed only while headers are awaited with nothing in flight (at the connection's
        # start and by _await_next), disarmed once they are in, by a refusal or at the end.
        self._header_timer = None
        if not self.transport.is_closing():
            self._refuse(TIMEOUT)


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(
        name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0")
        for name, value in headers
    )


def guarded_protocol(header_timeout_s: float, max_body_bytes: int) -> type[GuardedProtocol]:
    """``GuardedProtocol`` with these limits (uvicorn makes one per connection)."""
    limits = {"header_timeout_s": header_timeout_s, "max_body_bytes": max_body_bytes}
    return type("Guarded", (GuardedProtocol,), limits)
