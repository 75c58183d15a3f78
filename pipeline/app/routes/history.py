"""``GET /history``: past recognitions of this server and the CLI (the results database), as `mien history` lists
them; personal data, so it needs the token."""
from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from mien.pipeline.app import schemas
from mien.pipeline.app.routes.deps import State, personal_data
from mien.pipeline.history import parse_since

router = APIRouter()


@router.get("/history", responses=schemas.error_responses(401, 403, 422))
def history(state: State, request: Request, person: str | None = None, since: str | None = None, limit: int = 200,
            emotion: str | None = None) -> dict:
    """Past recognitions of this server and the CLI's database, newest first (`mien history`): ``person`` up
    to case, ``emotion`` shown (by that person), ``since`` a date or ISO time, at most ``limit`` (1-1000). Who
    was seen when is personal data: with a token configured, reading it needs the bearer token too."""
    personal_data(state, request, "the history and its file names")
    if not 1 <= limit <= 1000:
        raise HTTPException(422, "limit must be 1..1000")
    when = parse_since(since, "since") if since else None  # DatabaseError (422) for a date it cannot read
    return {"recognitions": state.db.query(person=person, since=when, limit=limit, emotion=emotion)}
