"""The web page at /, its icon, and /health: what a browser or a monitor asks for first."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from mien.pipeline.app import schemas
from mien.pipeline.app.page import FAVICON
from mien.pipeline.app.routes.deps import State

router = APIRouter()


@router.get("/", response_class=HTMLResponse, responses={200: {"description": "The web page (HTML)."}})
def index(state: State) -> HTMLResponse:
    """The web page: recognize an uploaded photo, list, enroll and forget people."""
    return HTMLResponse(state.page, headers=state.page_headers)


@router.get("/favicon.svg", include_in_schema=False)
@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    """The page's icon (browsers ask for /favicon.ico whatever the page says)."""
    return Response(FAVICON.read_bytes(), media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})


@router.get("/health", response_model=schemas.HealthResponse)
def health(state: State) -> dict:
    """Liveness plus what is loaded: model versions, which models, people, whether emotion is available."""
    return state.health()
