"""`/api/items/<id>/attachments`: files attached to an item (upload, list, download, delete).

Limits are checked here (the model stores whatever it is given): the size against
``KT_MAX_UPLOAD_BYTES`` while reading, the type by the name's extension against
``KT_ALLOWED_EXTENSIONS``. The stored content type comes from the extension, never from the
client. Downloads are always attachments (``Content-Disposition: attachment`` with the
original name), sandboxed and not sniffed, so nothing uploaded ever renders in the app's origin.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from apiflask import APIBlueprint
from flask import current_app, request, send_file
from werkzeug.exceptions import NotFound

from hivematrix.common.auth import permission_required, service_allowed
from hivematrix.knowledgetree.api import (
    READER_SERVICES,
    READERS,
    WRITERS,
    actor,
    file_dict,
    readable,
    refusals,
    tree,
)
from hivematrix.knowledgetree.api.schemas import DeletedOut, FileOut
from hivematrix.knowledgetree.items import KnowledgeError
from hivematrix.knowledgetree.items import NotFound as ItemNotFound
from hivematrix.knowledgetree.settings import allowed_extensions

bp = APIBlueprint("knowledgetree_attachments", __name__, tag="Attachments")

CHUNK = 1024 * 1024


class TooLarge(KnowledgeError):
    status = 413


class BadType(KnowledgeError):
    status = 415


def original_name(raw: str | None) -> str:
    """The name the file had on the sender's machine (some browsers send a whole path)."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name:
        raise KnowledgeError("a file with a name is required", "file")
    return name


def check_type(name: str, allowed: frozenset[str]) -> str:
    """The content type stored for ``name``; refused when its extension is not allowed."""
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or extension.lower() not in allowed:
        raise BadType(f"{name!r}: allowed types are {', '.join(sorted(allowed))}", "file")
    guessed, _ = mimetypes.guess_type(f"x.{extension.lower()}")
    return guessed or "application/octet-stream"


def read_limited(stream: Any, limit: int) -> bytes:
    """At most ``limit`` bytes; refused (413) as soon as there is more."""
    chunks: list[bytes] = []
    size = 0
    while chunk := stream.read(CHUNK):
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the file is larger than {limit} bytes", "file")
        chunks.append(chunk)
    return b"".join(chunks)


@bp.post("/api/items/<item_id>/attachments")
@bp.doc(summary="Attach a file",
        description="Multipart field `file` (a form post: it carries the CSRF token). Size "
                    "limit `KT_MAX_UPLOAD_BYTES` (413), allowed extensions "
                    "`KT_ALLOWED_EXTENSIONS` (415); the original name is kept.",
        responses={201: "The stored file"})
@permission_required(*WRITERS)
@bp.output(FileOut, status_code=201)
@refusals
def upload(item_id: str) -> Any:
    knowledge = tree()
    upload = request.files.get("file")
    if upload is None:
        raise KnowledgeError("a multipart field 'file' is required", "file")
    name = original_name(upload.filename)
    content_type = check_type(name, allowed_extensions(current_app.config))
    data = read_limited(upload.stream, int(current_app.config["KT_MAX_UPLOAD_BYTES"]))
    stored = knowledge.attach_file(item_id, name, data, by=actor(), content_type=content_type)
    return file_dict(stored)


@bp.get("/api/items/<item_id>/attachments")
@bp.doc(summary="An item's files", description="Oldest first, with their original names.")
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@bp.output(FileOut(many=True))
@refusals
def list_files(item_id: str) -> Any:
    knowledge = tree()
    readable(knowledge, item_id)
    return [file_dict(stored) for stored in knowledge.files(item_id)]


def _own_file(item_id: str, file_id: str) -> Any:
    knowledge = tree()
    readable(knowledge, item_id)
    stored, path = knowledge.file(file_id)
    if stored.item_id != item_id:
        # As if it did not exist: another item's file is not reachable through this one.
        raise ItemNotFound(f"no file {file_id!r}", "file_id")
    return knowledge, stored, path


@bp.get("/api/items/<item_id>/attachments/<file_id>")
@bp.doc(summary="Download a file", description="Always as an attachment, under its "
                                               "original name.")
@permission_required(*READERS)
@service_allowed(*READER_SERVICES)
@refusals
def download(item_id: str, file_id: str) -> Any:
    _, stored, path = _own_file(item_id, file_id)
    if not path.is_file():
        raise NotFound(f"The bytes of file '{file_id}' are missing.")
    response = send_file(path, mimetype=stored.content_type, as_attachment=True,
                         download_name=stored.original_filename, max_age=0)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.delete("/api/items/<item_id>/attachments/<file_id>")
@bp.doc(summary="Delete a file", description="From the graph and the disk.")
@permission_required(*WRITERS)
@bp.output(DeletedOut)
@refusals
def delete_file(item_id: str, file_id: str) -> Any:
    knowledge, stored, _ = _own_file(item_id, file_id)
    knowledge.delete_file(stored.id, by=actor())
    return {"deleted": stored.id}
