"""``/people``: who is enrolled, enrolling photos, a person's photos and faces, removing a photo, renaming and
forgetting; changes need the token and are serialised by the server's enroll lock."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from mien.pipeline.app import schemas
from mien.pipeline.app.imageupload import upload_or_reason
from mien.pipeline.app.routes.deps import State, authorised, personal_data
from mien.pipeline.app.serverconfig import MAX_PHOTOS_PER_REQUEST
from mien.pipeline.app.state import LockedModels
from mien.pipeline.names import validate_person_name
from mien.pipeline.people import enroll_photos, forget_person, remove_photo
from mien.pipeline.provenance import classifier_fingerprint

router = APIRouter()


@router.get("/people", response_model=schemas.PeopleResponse)
def people(state: State) -> dict:
    """Enrolled people with the number of photos each was enrolled from."""
    return {"people": state.people(), "classifier": classifier_fingerprint(state.current())}


@router.post("/people/{name}/photos", dependencies=[Depends(authorised)], response_model=schemas.EnrollResponse,
             responses=schemas.error_responses(400, 401, 403, 409, 413, 422, 503))
async def add_photos(state: State, name: str,
                     files: Annotated[list[UploadFile], File(description="one or more photos")]) -> dict:
    """Enroll photos of one person (new or existing); only new photos go through the models. A photo that is
    too large, not an image or without a usable face is skipped with the reason in its result."""
    name = validate_person_name(name)  # PersonNameError (400)
    if len(files) > MAX_PHOTOS_PER_REQUEST:
        raise HTTPException(413, f"at most {MAX_PHOTOS_PER_REQUEST} photos per request")
    photos = [(f.filename or f"photo_{i}", await upload_or_reason(f, state.config.max_upload))
              for i, f in enumerate(files, start=1)]

    def work() -> dict:
        with state.enroll_lock:
            update = enroll_photos(name, photos, LockedModels(state.base, state.model_lock), state.gallery)
            if not update.faces:
                raise HTTPException(422, {"message": f"no usable face in the photos of {name}; nothing enrolled",
                                          "photos": [p.to_dict() for p in update.photos]})
            state.current()  # requests from now on see the new person
        return {"person": name, "photos": [p.to_dict() for p in update.photos],
                "enrolled_photos": update.faces, "people": state.people()}

    return await run_in_threadpool(work)


@router.get("/people/{name}", responses=schemas.error_responses(400, 401, 403, 404))
def person(state: State, name: str, request: Request) -> dict:
    """One person's photos (content hash, source, when added, whether the bytes are stored), up to case. The
    sources are file names of the server's machine: with a token configured, reading them needs it."""
    personal_data(state, request, "a person's photos")
    info = state.gallery.person(validate_person_name(name))  # UnknownPersonError (404)
    return {"name": info.name, "photos": info.faces}


@router.get("/people/{name}/photos/{photo_hash}/face", response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}, "description": "the face, 128x128 JPEG"},
                       **schemas.error_responses(400, 401, 403, 404, 422)})
def face(state: State, name: str, photo_hash: str, request: Request) -> Response:
    """The face in one enrolled photo as a thumbnail (the People tab shows one per person and per photo); a
    person's face is personal data: with a token configured, it needs it."""
    from mien.pipeline.app.thumbnails import face_thumbnail
    from mien.pipeline.gallery import cache_model

    personal_data(state, request, "a person's faces")
    # no such person or photo, or its file gone: 404; a photo that cannot be read: 422
    jpeg = face_thumbnail(state.gallery, validate_person_name(name), photo_hash, cache_model(state.base),
                          detect=state.base.subject_faces, model_lock=state.model_lock)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})


@router.delete("/people/{name}/photos/{photo_hash}", dependencies=[Depends(authorised)],
               responses=schemas.error_responses(400, 401, 403, 404, 503))
def delete_photo(state: State, name: str, photo_hash: str) -> dict:
    """Erase one photo of a person (its embedding, stored bytes and cached embedding); the person keeps the
    others. The photo hashes are those of GET /people/{name}."""
    name = validate_person_name(name)
    with state.enroll_lock:
        removed = remove_photo(name, photo_hash, state.gallery, state.config.home)
        state.current()
    return {"person": name, "removed_faces": removed, "people": state.people()}


@router.patch("/people/{name}", dependencies=[Depends(authorised)], response_model=schemas.RenameResponse,
              responses=schemas.error_responses(400, 401, 403, 404, 409, 503))
def rename_person(state: State, name: str, body: schemas.RenameRequest) -> dict:
    """Rename a person (their photos and embeddings stay); 409 if the new name is taken up to case."""
    old, new = validate_person_name(name), validate_person_name(body.name)
    with state.enroll_lock:
        state.gallery.rename(old, new)
        state.current()
    return {"renamed": old, "to": new, "people": state.people()}


@router.delete("/people/{name}", dependencies=[Depends(authorised)], response_model=schemas.ForgetResponse,
               responses=schemas.error_responses(400, 401, 403, 404, 503))
def delete_person(state: State, name: str) -> dict:
    """Forget a person: their embeddings, cached embeddings and uploaded photos, in one transaction; then their
    name, photo names and hashes in the server's results database are redacted."""
    name = validate_person_name(name)
    with state.enroll_lock:
        forgotten = forget_person(name, state.gallery, state.config.home)
        state.db.redact_person(name, forgotten.names)  # erasure: their recognitions (under every name they had)
        # read "unknown" from now on
        state.current()
    return {"forgotten": name, "people": state.people()}
