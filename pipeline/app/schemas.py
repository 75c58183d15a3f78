"""The JSON shapes of ``mien serve`` (pydantic), so /openapi.json documents what every endpoint returns.

The models describe the dicts the server already builds (``ImageRecord.to_dict()``, ``model_versions()``,
...); field order follows those dicts, so serialising through a model gives the same JSON.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

Point = Annotated[list[float], Field(min_length=2, max_length=2, description="[x, y] in image pixels")]

# ---- recognition ---------------------------------------------------------------------------------


class Candidate(BaseModel):
    """An enrolled person near a face, and the distance to that person's nearest enrolled photo."""

    name: str
    distance: float


class Identity(BaseModel):
    """Who a face is: an enrolled name, or ``unknown`` with the closest enrolled person and the distance to them."""

    name: str = Field(description="an enrolled person, or 'unknown' when a threshold is not met")
    confidence: float | None = Field(description="how sure the matcher is of the name (the calibrated SVM "
                                                 "probability, or the nearest-neighbour margin); null for 'unknown'")
    distance: float | None = Field(description="distance to the closest person's nearest enrolled photo (the same-person "
                                               "threshold applies to it)")
    closest: str | None = Field(None, description="the closest enrolled person: the name itself, or for 'unknown' who "
                                                  "the face was nearest to (null in records of a forgotten person)")
    candidates: list[Candidate] | None = Field(None, description="the nearest enrolled people, closest first, with "
                                                                 "candidates=K")


class Emotion(BaseModel):
    """The emotion of a face: its label (or ``uncertain``), that label's probability and every emotion's score."""

    label: str = Field(description="the most probable emotion, or 'uncertain' below the emotion threshold")
    confidence: float = Field(description="probability of the most probable emotion")
    scores: dict[str, float] = Field(description="probability of each emotion: FER2013's 7, or FER+'s 8 (contempt added)")


class Face(BaseModel):
    """Everything mien says about one face (``FaceRecord.to_dict()``)."""

    face_id: int = Field(description="1-based index of the face in the image")
    bbox: list[int] = Field(min_length=4, max_length=4, description="[x, y, width, height] in image pixels")
    detection_confidence: float
    detection_scale: float = Field(description="1.0, or the scale of the downscaled copy in which the detector's "
                                               "retry found the face when the full-size image gave none")
    landmarks: dict[str, Point] = Field(description="named landmarks (eyes, nose, mouth corners) as [x, y]")
    identity: Identity | None = Field(description="null while nobody is enrolled")
    emotion: Emotion | None = Field(description="null when no emotion model is available")


class ModelVersions(BaseModel):
    """Versions of the models that produced a result (``mien.pipeline.provenance.model_versions``)."""

    detector: str = Field(description="face detector and the settings that change what it detects")
    embedder: str = Field(description="FaceNet weights version")
    classifier: str | None = Field(description="fingerprint of the enrolled people; null while nobody is enrolled")
    emotion: str | None = Field(description="emotion model version; null when none is available")
    emotion_labels: str | None = Field(default=None, description="its label set: fer2013 (7 emotions) or ferplus "
                                                                 "(8, contempt added); null without emotion")
    precision: dict[str, str | None] = Field(description="the arithmetic each network ran in (detector, embedder, "
                                                         "emotion): fp32 or bf16")


class IdentityThresholds(BaseModel):
    """The identity thresholds applied: max distance and min probability to name a face."""

    distance: float
    probability: float


class AppliedThresholds(BaseModel):
    """The thresholds a recognition applied (``mien.pipeline.provenance.thresholds_used``)."""

    identity: IdentityThresholds | None = Field(description="null while nobody is enrolled")
    emotion: float


class RecognizeResponse(BaseModel):
    """``POST /recognize``: the record of ``mien recognize --json`` for one image, plus where it is stored."""

    file: str
    width: int
    height: int
    faces: list[Face]
    error: str | None = Field(None, description="only present when the image could not be processed")
    id: int = Field(description="id of the stored result in the results database")
    models: ModelVersions
    thresholds: AppliedThresholds
    annotated_jpeg_base64: str | None = Field(None, description="only present with annotate=true")


# ---- people --------------------------------------------------------------------------------------


class Person(BaseModel):
    """An enrolled person and the number of photos they were enrolled from."""

    name: str
    photos: int


class PeopleResponse(BaseModel):
    """``GET /people``: everyone enrolled, and a fingerprint that changes on every enrollment."""

    people: list[Person]
    classifier: str | None = Field(description="fingerprint of the classifier; null while nobody is enrolled")


class PhotoResult(BaseModel):
    """What enrollment did with one uploaded photo."""

    file: str
    used: bool = Field(description="whether the photo's face is now enrolled")
    reason: str | None = Field(description="why the photo was not used (e.g. 'no face found'); null when used")
    also_enrolled_as: list[str] = Field([], description="other people this very photo is enrolled for "
                                                        "(a warning: the same photo under two names)")


class EnrollResponse(BaseModel):
    """``POST /people/{name}/photos``: one result per photo and everyone enrolled now."""

    person: str
    photos: list[PhotoResult]
    enrolled_photos: int = Field(description="photos this person is now enrolled from (old and new)")
    people: list[Person]


class RenameRequest(BaseModel):
    """``PATCH /people/{name}``: the person's new name (the same rule as enrollment)."""

    name: str = Field(description="the new name", max_length=256)


class RenameResponse(BaseModel):
    """``PATCH /people/{name}``: the old and new name and everyone enrolled."""

    renamed: str
    to: str
    people: list[Person]


class ForgetResponse(BaseModel):
    """``DELETE /people/{name}``: who was forgotten and everyone still enrolled."""

    forgotten: str
    people: list[Person]


# ---- video jobs ----------------------------------------------------------------------------------


class VideoJobResponse(BaseModel):
    """``POST /video``, ``GET /video/{id}`` and ``DELETE /video/{id}``: a video job and how far it got."""

    id: str = Field(description="the job's id (32 hex digits): its results are read with it")
    file: str = Field(description="the uploaded file's name")
    status: Literal["running", "done", "error", "deleted"] = Field(description="deleted: the answer to DELETE")
    frames: int = Field(description="frames processed so far")
    total: int = Field(description="frames in the video (0 when the container does not say)")
    error: str | None = Field(None, description="why the job failed (status error)")
    summary: dict[str, Any] | None = Field(None, description="when done: `mien video`'s summary (who was on screen "
                                           "when, emotions over time; `source` is the uploaded file's name; "
                                           "`stopped` when the job stopped at its faces-in-frames limit)")
    annotated_video: str | None = Field(None, description="when done: the URL of the annotated H.264 video")


# The multipart body of POST /video, documented by hand: the endpoint streams it into the job's folder itself.
VIDEO_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "the video (MP4, WebM, AVI, MOV, MKV)"},
        "every": {"type": "integer", "minimum": 1, "maximum": 30, "default": 3,
                  "description": "detect every N-th frame"}}}}}}}


# ---- health --------------------------------------------------------------------------------------


class ModelsLoaded(BaseModel):
    """Which models this server has loaded (the classifier only once somebody is enrolled)."""

    detector: bool
    embedder: bool
    classifier: bool
    emotion: bool


class Batching(BaseModel):
    """How /recognize requests are being batched (``mien.pipeline.app.batching``)."""

    max_batch: int = Field(description="images per trip through the models, at most")
    recent_mean_batch: float = Field(description="mean images per trip over the last 100 trips (0 before any)")
    pending: int = Field(description="requests in flight now")
    max_pending: int = Field(description="requests in flight beyond which a new one gets 429")


class HealthResponse(BaseModel):
    """``GET /health``: liveness plus what is loaded and how the server is configured."""

    status: Literal["ok", "degraded"] = Field(description="degraded: people cannot be changed (see gallery)")
    gallery: str | None = Field(None, description="why enrolling and forgetting are refused, if they are")
    models: ModelVersions
    people: int = Field(description="number of enrolled people")
    emotion: bool = Field(description="whether an emotion model is available")
    read_only: bool = Field(description="whether enrolling and forgetting are disabled")
    auth: Literal["bearer", "none"] = Field(description="what changing people needs")
    loaded: ModelsLoaded
    enrolled_photos: int = Field(description="photos all enrolled people were enrolled from")
    batching: Batching


# ---- errors --------------------------------------------------------------------------------------


class ErrorResponse(BaseModel):
    """An error answer (4xx, 5xx): what went wrong, in words."""

    detail: str


class FieldError(BaseModel):
    """One invalid request field, as FastAPI reports it."""

    loc: list[str | int]
    msg: str
    type: str
    input: Any = None
    ctx: dict[str, Any] | None = None


class NoUsableFace(BaseModel):
    """Enrollment found no usable face in any photo: nothing was enrolled."""

    message: str
    photos: list[PhotoResult]


class UnprocessableResponse(BaseModel):
    """A 422: an unreadable or empty image (text), invalid fields (list) or no usable face to enroll (object)."""

    detail: str | list[FieldError] | NoUsableFace


ERROR_CAUSES = {
    400: "Invalid person name (path separators, '..', a leading dot, 'unknown', ...).",
    401: "Missing or wrong `Authorization: Bearer <MIEN_API_TOKEN>`.",
    403: "The server is read-only (started with --read-only); without a token it serves no personal data (history, "
         "a person's photos and faces).",
    404: "Nobody of that name is enrolled.",
    409: "The name differs from an enrolled person's only in case or Unicode form; use that person's name.",
    413: "The request body or a photo is over the upload limit, or too many photos in one request.",
    415: "A file is not an image, by content type or by content (JPEG, PNG, BMP, WebP and TIFF are accepted).",
    422: "An empty or unreadable image, an invalid field, or (enrollment) no usable face in any photo.",
    429: "The server already has its maximum of requests in flight (`--max-pending`); retry after the "
         "`Retry-After` header's seconds.",
    503: "The gallery cannot be written: another process holds its lock (retry after `Retry-After`), or its file "
         "was deleted or replaced while the server ran (restart the server; `/health` says which).",
}


def error_responses(*codes: int) -> dict[int | str, dict]:
    """OpenAPI ``responses`` for the given error statuses: their cause and JSON shape."""
    out: dict[int | str, dict] = {}
    for code in codes:
        out[code] = {"model": UnprocessableResponse if code == 422 else ErrorResponse,
                     "description": ERROR_CAUSES[code]}
    if 401 in codes:
        out[401]["headers"] = {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}
    if 429 in codes:
        out[429]["headers"] = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
    return out
