"""``POST /recognize``: who + emotion for every face of one uploaded photo, batched with concurrent requests
(``batching``), within the pixel budget, and stored in the results database."""
from __future__ import annotations

import base64
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool

from mien.identity.storage import content_hash
from mien.pipeline.app import schemas
from mien.pipeline.app.imageupload import read_image_upload
from mien.pipeline.app.routes.deps import State
from mien.pipeline.images import checked_size, decode_image
from mien.pipeline.provenance import model_versions, thresholds_used

router = APIRouter()


@router.post("/recognize", response_model=schemas.RecognizeResponse, response_model_exclude_unset=True,
             responses=schemas.error_responses(413, 415, 422, 429))
async def recognize(
    state: State,
    request: Request,
    file: Annotated[UploadFile, File(description="the photo (JPEG, PNG, BMP, WebP, TIFF or GIF)")],
    probability_threshold: Annotated[float | None, Form(ge=0, le=1, description="min SVM probability to name a "
                                                        "face (the CLI's --probability-threshold)")] = None,
    distance_threshold: Annotated[float | None, Form(gt=0, allow_inf_nan=False,
                                                     description="max distance to the nearest enrolled photo")] = None,
    emotion_threshold: Annotated[float | None, Form(ge=0, le=1, description="below it the emotion is 'uncertain'")] = None,
    identity_threshold: Annotated[float | None, Form(ge=0, le=1, deprecated=True,
                                                     description="the old name of probability_threshold")] = None,
    annotate: Annotated[bool, Form(description="also return the annotated image (base64 JPEG)")] = False,
    candidates: Annotated[int, Form(ge=0, le=20, description="also list this many nearest enrolled people with "
                                                              "their distances")] = 0,
) -> dict:
    """Who + emotion for every face: the JSON record of `mien recognize --json` for one image."""
    with state.batcher.admitted():  # ServerBusy (429) beyond --max-pending requests in flight
        if len((await request.form()).getlist("file")) > 1:  # the parsed form, not read again
            raise HTTPException(400, "one photo per request: send each photo in its own POST /recognize")
        data = await read_image_upload(file, state.config.max_upload)
        name = file.filename or "upload"
        if identity_threshold is not None and probability_threshold is None:
            probability_threshold = identity_threshold
        rec = state.snapshot(probability_threshold=probability_threshold, distance_threshold=distance_threshold,
                             emotion_threshold=emotion_threshold, candidates=candidates or None)

        def work() -> dict:
            width, height = checked_size(data, name)  # ImageError (422) from the header, before any pixel
            with state.pixel_budget.hold(width * height):
                image = decode_image(data, name)
                record = state.batcher.recognize(rec, image, name)
                models, thresholds = model_versions(rec), thresholds_used(rec)
                rid = state.db.add(record, image_sha256=content_hash(data), thresholds=thresholds, models=models,
                                   source="server")
                out = record.to_dict()
                out.update(id=rid, models=models, thresholds=thresholds)
                if annotate:
                    out["annotated_jpeg_base64"] = annotated_jpeg(image, record)
                return out

        return await run_in_threadpool(work)


def annotated_jpeg(image, record) -> str:
    """The photo with its faces drawn as `mien recognize --annotate` draws them, as base64 JPEG."""
    import cv2

    from mien.pipeline.app.outputs import annotate as draw

    ok, buf = cv2.imencode(".jpg", draw(image, record, min_side=0), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return base64.b64encode(buf.tobytes()).decode("ascii")
