"""uvicorn's HTTP/1.1 protocol with a deadline for request headers.

uvicorn 0.54 arms no timer until a first response is sent, so a client that connects and sends half a request
line (or nothing) holds a connection forever; a few hundred of them exhaust the server. Here a connection must
deliver a complete request head within ``header_timeout`` seconds of connecting or of its previous response.
"""
from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol


class HeaderDeadlineH11(H11Protocol):
    """H11Protocol that closes connections which do not send a whole request head in time."""

    header_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
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

    def data_received(self, data: bytes) -> None:
        if self._idle():
            self._arm()  # bytes of a next request started arriving: its head has header_timeout seconds too
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        if not self._idle():
            self._disarm()  # a request head arrived: the request and its response are not on this clock

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
