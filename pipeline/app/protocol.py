"""uvicorn's HTTP/1.1 protocol with deadlines for request heads and a minimum rate for request bodies.

uvicorn 0.54 arms no timer until a first response is sent, so a client that connects and sends half a request
line (or nothing) holds a connection forever; a few hundred of them exhaust the server. Here a connection must
deliver a complete request head within ``header_timeout`` seconds of connecting or of its previous response, and
then its body at ``body_min_rate`` bytes/s or more on average once ``body_grace`` seconds have passed (a body
trickled at a byte every 2 s is cut off after the grace; a 10 MB photo on a 1 Mbit/s link is not). Time while
the server itself has paused reading (its buffer is full) does not count against the client.

A WebSocket upgrade leaves this protocol (uvicorn hands the connection to its WebSocket protocol before a request
cycle exists), so both clocks are stopped there, and the upgrade is refused with a 503 like any other request once
``limit_concurrency`` connections are open (uvicorn checks the limit only for plain requests): an open stream is
then never cut by a head deadline of the request that opened it.
"""
from __future__ import annotations

import asyncio
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


log = logging.getLogger(__name__)


class HeaderDeadlineH11(H11Protocol):
    """H11Protocol that closes connections which do not send a whole request head in time, or whose request
    body arrives slower than ``body_min_rate``."""

    header_timeout: float = 10.0
    body_grace: float = 10.0
    body_min_rate: float = 1024.0
    body_check_every: float = 1.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._body_check: asyncio.TimerHandle | None = None
        self._body_seconds = 0.0
        self._body_bytes = 0
        self._arm()

    def _idle(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_timeout, self._deadline_passed)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _deadline_passed(self) -> None:
        self._header_deadline = None
        if self._idle() and not self.transport.is_closing():
            self.transport.close()

    def _receiving_body(self) -> bool:
        return not self._idle() and self.cycle.more_body and not self.transport.is_closing()

    def _start_body_clock(self) -> None:
        self._body_seconds, self._body_bytes = 0.0, 0
        if self._body_check is None and self._receiving_body():
            self._body_check = self.loop.call_later(self.body_check_every, self._check_body_rate)

    def _check_body_rate(self) -> None:
        self._body_check = None
        if not self._receiving_body():
            return
        if not self.flow.read_paused:  # the server's own back-pressure is not the client's slowness
            self._body_seconds += self.body_check_every
        if self._body_seconds > self.body_grace and self._body_bytes < self.body_min_rate * self._body_seconds:
            log.warning("closing a connection whose request body came at %.0f bytes/s (minimum %.0f)",
                        self._body_bytes / self._body_seconds, self.body_min_rate)
            self.transport.close()
            return
        self._body_check = self.loop.call_later(self.body_check_every, self._check_body_rate)

    def data_received(self, data: bytes) -> None:
        if self._idle():
            self._arm()  # bytes of a next request started arriving: its head has header_timeout seconds too
        else:
            self._body_bytes += len(data)
        super().data_received(data)

    def handle_events(self) -> None:
        started = self._idle()
        super().handle_events()
        if not self._idle():
            self._disarm()  # a request head arrived: the request and its response are not on this clock
            if started:
                self._start_body_clock()

    def _stop_clocks(self) -> None:
        self._disarm()
        if self._body_check is not None:
            self._body_check.cancel()
            self._body_check = None

    def _over_limit(self) -> bool:
        limit = self.limit_concurrency
        return limit is not None and (len(self.connections) >= limit or len(self.tasks) >= limit)

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        """Stop this protocol's clocks (the WebSocket protocol owns the connection from now on), or answer 503
        when the server already holds ``limit_concurrency`` connections."""
        self._stop_clocks()
        if self._over_limit():
            log.warning("Exceeded concurrency limit: a WebSocket upgrade is refused with 503.")
            self._send_503()
            return
        super().handle_websocket_upgrade(event)

    def _send_503(self) -> None:
        body = b"Service Unavailable: too many connections; try again later"
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close"),
                   (b"content-length", str(len(body)).encode())]
        for event in (h11.Response(status_code=503, headers=headers, reason=b"Service Unavailable"),
                      h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event))
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clocks()
        super().connection_lost(exc)
