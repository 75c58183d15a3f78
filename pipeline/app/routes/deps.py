"""What the routes share: the server's state (``State``, from ``app.state.mien``), the bearer token a change to people
needs (``authorised``) and the one personal data needs (``personal_data``)."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from mien.pipeline.app.guards import auth_problem, personal_data_problem
from mien.pipeline.app.state import ServerState


def server_state(connection: HTTPConnection) -> ServerState:
    """The state of the app answering this request or WebSocket (``create_app`` put it on ``app.state.mien``)."""
    return connection.app.state.mien


State = Annotated[ServerState, Depends(server_state)]
bearer = HTTPBearer(auto_error=False)


def _refuse(problem: tuple[int, str]) -> HTTPException:
    return HTTPException(problem[0], problem[1], headers={"WWW-Authenticate": "Bearer"} if problem[0] == 401 else None)


def authorised(state: State, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    """The same rule as AuthBeforeBody (which already applied it); here it documents the bearer scheme."""
    header = f"Bearer {credentials.credentials}" if credentials else None
    if (problem := auth_problem(state.config, header)) is not None:
        raise _refuse(problem)


def personal_data(state: ServerState, request: Request, what: str) -> None:
    """Who was seen when, and where a person's photos came from, are personal data: a server with a token
    answers them only with it (read-only or not), a read-only one without a token not at all. Called first in the
    route, not a dependency, so a malformed query is still answered 422 before the token is asked for."""
    if (problem := personal_data_problem(state.config, request.headers.get("authorization"), what)) is not None:
        raise _refuse(problem)
