"""``mien people list | show NAME | add NAME PHOTO... | forget NAME | rename OLD NEW``: the gallery, one person
at a time, with the same rules as the API (only ``add`` loads the models)."""
from __future__ import annotations

import argparse
from pathlib import Path

from mien.pipeline.app.cli.common import add_detection_options, add_json_option, build_recognizer, existing_file


def register(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """Add the ``people`` command and its sub-commands."""
    p = sub.add_parser("people", parents=parents, help="list, show, add, forget or rename enrolled people",
                       description="The gallery of enrolled people (MIEN_HOME/identity/gallery.sqlite3, or "
                                   "MIEN_GALLERY_URL). Changes are seen by a running `mien serve` at its next request.")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    ls = verbs.add_parser("list", parents=parents, help="enrolled people and their number of photos")
    add_json_option(ls, "the people")
    ls.set_defaults(run=run_list)
    show = verbs.add_parser("show", parents=parents, help="one person's photos (hash, source, when added)")
    show.add_argument("name")
    add_json_option(show, "the person's photos")
    show.set_defaults(run=run_show)
    rm = verbs.add_parser("remove", parents=parents, help="erase one photo of a person (by the hash `show` lists)")
    rm.add_argument("name")
    rm.add_argument("photo_hash", metavar="HASH", help="the photo's sha256 as `mien people show NAME` lists it "
                                                         "(a unique prefix of 8+ characters is enough)")
    rm.set_defaults(run=run_remove)
    add = verbs.add_parser("add", parents=parents, help="enroll photos of one person (new or existing)")
    add.add_argument("name")
    add.add_argument("photos", nargs="+", type=existing_file, metavar="PHOTO")
    add.add_argument("--new", action="store_true",
                     help="enroll NAME as a new person even if it looks like a typo of an enrolled name")
    add_detection_options(add, one_subject=True)
    add.set_defaults(run=run_add)
    forget = verbs.add_parser("forget", parents=parents,
                              help="erase a person: embeddings, stored photos and cached embeddings, and their "
                                   "name in the results database (redacted to unknown)")
    forget.add_argument("name")
    forget.add_argument("--db", action="append", default=None, metavar="PATH",
                        help="also redact the person in this results database (repeatable; MIEN_HOME/mien.db is "
                             "always redacted when it exists)")
    forget.add_argument("-y", "--yes", action="store_true",
                        help="do not ask for confirmation (needed when standard input is not a terminal)")
    forget.set_defaults(run=run_forget)
    rename = verbs.add_parser("rename", parents=parents, help="rename a person")
    rename.add_argument("old")
    rename.add_argument("new")
    rename.set_defaults(run=run_rename)


def _gallery():
    from mien.pipeline.gallery import open_default_gallery

    return open_default_gallery()


def run_list(args: argparse.Namespace) -> int:
    """Print every enrolled person with their number of photos."""
    from mien.pipeline.app.outputs import terminal_safe

    with _gallery() as gallery:
        people = gallery.people()
        if args.json:
            from mien.pipeline.app.outputs import write_json

            write_json(args.json, {"gallery": gallery.location,
                                   "people": [{"name": n, "photos": k} for n, k in people.items()]})
            return 0
        for name, n in people.items():
            print(f"{terminal_safe(name)}\t{n}")
        print(f"{len(people)} people, {sum(people.values())} photos in {gallery.location}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    """Erase one photo of a person."""
    from mien.pipeline.app.outputs import terminal_safe
    from mien.pipeline.people import photo_hash_of, remove_photo

    with _gallery() as gallery:
        photo = photo_hash_of(args.name, args.photo_hash, gallery)
        n = remove_photo(args.name, photo, gallery)
    print(f"removed photo {photo[:16]} of {terminal_safe(args.name)} ({n} face(s))")
    return 0


def run_show(args: argparse.Namespace) -> int:
    """Print one person's photos."""
    from mien.pipeline.app.outputs import terminal_safe

    with _gallery() as gallery:
        info = gallery.person(args.name)
    if args.json:
        from mien.pipeline.app.outputs import write_json

        write_json(args.json, {"name": info.name, "photos": info.faces})
        return 0
    print(f"{terminal_safe(info.name)}: {info.photos} photos")
    for face in info.faces:
        print(f"  {face['photo_hash'][:16]}  {face['added']}  {terminal_safe(face['source'])}")
    return 0


def run_add(args: argparse.Namespace) -> int:
    """Embed the photos and add them to the person; exit 1 if none was usable."""
    from mien.pipeline.app.outputs import terminal_safe
    from mien.pipeline.names import validate_person_name
    from mien.pipeline.people import enroll_photos

    name = validate_person_name(args.name)  # before the models load
    from mien.pipeline.images import ImageError, path_text, read_image_bytes
    from mien.pipeline.people import Unreadable

    with _gallery() as gallery:
        _check_name(name, gallery, args.new)
    photos = []
    for p in args.photos:
        try:
            photos.append((path_text(p), read_image_bytes(p)))
        except ImageError as exc:
            photos.append((path_text(p), Unreadable(str(exc).removeprefix(f"{path_text(p)}: "))))
    rec = build_recognizer(args, emotion=False, identity=False)
    with _gallery() as gallery:
        update = enroll_photos(name, photos, rec, gallery)
    for r in update.photos:
        status = "added" if r.used and not r.reason else f"skipped ({r.reason})"
        print(f"{terminal_safe(r.file)}: {status}")
        if r.also_enrolled_as:
            print(f"    warning: also enrolled as {', '.join(map(terminal_safe, r.also_enrolled_as))}")
    if not update.faces:
        print(f"no usable face in the photos of {terminal_safe(name)}; nothing enrolled")
        return 1
    print(f"{terminal_safe(name)}: {update.added} photos added, {update.faces} enrolled")
    return 0


def _check_name(name: str, gallery, new: bool) -> None:
    """A new name close to an enrolled one: asked about on a terminal, else refused with "did you mean" (--new adds
    it anyway)."""
    import sys

    from mien.pipeline.people import SimilarNameError, check_new_name, similar_name

    try:
        check_new_name(name, gallery, new)
    except SimilarNameError:
        if not sys.stdin.isatty():
            raise
        from mien.pipeline.app.outputs import terminal_safe

        near = similar_name(name, list(gallery.people()))
        answer = input(f"{terminal_safe(name)} is not enrolled; did you mean {terminal_safe(near)}? "
                       f"Enroll {terminal_safe(name)} as a new person? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise SimilarNameError(f"nothing enrolled; to add photos to {near!r}, run `mien people add {near!r} ...`")


def run_forget(args: argparse.Namespace) -> int:
    """Erase the person from the gallery."""
    from mien.pipeline.app.outputs import terminal_safe
    from mien.pipeline.history import redact_everywhere
    from mien.pipeline.people import forget_person

    with _gallery() as gallery:
        if not args.yes:
            _confirm_forget(args.name, gallery)
        forgotten = forget_person(args.name, gallery)
    print(f"forgot {terminal_safe(args.name)}: {forgotten.faces} photos, their embeddings and cached embeddings erased")
    for path, faces in redact_everywhere(args.name, forgotten.names, [Path(p) for p in args.db or []]):
        print(f"{path}: {faces} recognised faces of {terminal_safe(args.name)} redacted to unknown")
    return 0


def _confirm_forget(name: str, gallery) -> None:
    """Ask before erasing (it cannot be undone); without a terminal to ask on, --yes is required."""
    import sys

    from mien.identity.gallery.base import UnknownPersonError, name_key
    from mien.pipeline.app.outputs import terminal_safe
    from mien.pipeline.errors import UsageError

    found = {n: c for n, c in gallery.people().items() if name_key(n) == name_key(name)}
    if not found:
        raise UnknownPersonError.of(name)
    [(enrolled, photos)] = found.items()
    if not sys.stdin.isatty():
        raise UsageError(f"forgetting {enrolled!r} cannot be undone; pass --yes to confirm (standard input is not a "
                         "terminal to ask on).")
    answer = input(f"Forget {terminal_safe(enrolled)} ({photos} photos) and redact them in the results databases? "
                   "This cannot be undone. [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise UsageError("nothing was forgotten.")


def run_rename(args: argparse.Namespace) -> int:
    """Rename a person (the new name follows the same rule as enrollment)."""
    from mien.pipeline.app.outputs import terminal_safe
    from mien.pipeline.names import validate_person_name

    with _gallery() as gallery:
        gallery.rename(validate_person_name(args.old), validate_person_name(args.new))
    print(f"renamed {terminal_safe(args.old)} -> {terminal_safe(args.new)}")
    return 0
