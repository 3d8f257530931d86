"""Request shapes of KnowledgeTree's JSON API (responses are built in :mod:`..api`).

Unknown fields are refused (400 naming them), so nobody can set ``read_only`` or ``source``:
only the Codex sync writes those.
"""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Boolean, Dict, Float, Integer, List, Nested, Raw, String
from apiflask.validators import Length, OneOf, Range

from hivematrix.knowledgetree.items import FORMATS, MAX_NAME, ROOT_ID, SEARCH_LIMIT_MAX

ID = Length(1, 100)
#: One article's content (about 2 MB of text); bigger belongs in an attachment.
MAX_CONTENT = 2_000_000


class ItemIn(Schema):
    parent_id = String(required=True, validate=ID)
    name = String(required=True, validate=Length(1, MAX_NAME * 4))
    type = String(load_default="article", validate=OneOf(("folder", "article")))
    content = String(load_default="", validate=Length(max=MAX_CONTENT))
    content_format = String(load_default="markdown", validate=OneOf(FORMATS))
    is_attached = Boolean(load_default=False)
    metadata = Dict(keys=String(), load_default=dict)
    account_number = String(allow_none=True, validate=Length(1, 50))


class ItemPatch(Schema):
    name = String(validate=Length(1, MAX_NAME * 4))
    content = String(validate=Length(max=MAX_CONTENT))
    content_format = String(validate=OneOf(FORMATS))
    is_attached = Boolean()
    metadata = Dict(keys=String())
    account_number = String(validate=Length(1, 50))


class MoveIn(Schema):
    new_parent_id = String(required=True, validate=ID)


class SearchQuery(Schema):
    query = String(load_default="", validate=Length(max=500))
    start = String(load_default=ROOT_ID, validate=ID)
    limit = Integer(load_default=20, validate=Range(1, SEARCH_LIMIT_MAX))
    offset = Integer(load_default=0, validate=Range(0, 100_000))


class ContextQuery(Schema):
    excluded_ids = List(String(validate=ID), load_default=list)
    max_chars = Integer()


class ContextIn(Schema):
    excluded_ids = List(String(validate=ID), load_default=list, validate=Length(max=1000))
    max_chars = Integer()


class ExportQuery(Schema):
    item_id = String(load_default=ROOT_ID, validate=ID)


class ImportIn(Schema):
    items = Raw(required=True, metadata={"description": "The `items` list of an export"})
    parent_id = String(load_default=ROOT_ID, validate=ID)
    dry_run = Boolean(load_default=False)
    # An export document's own header fields are accepted and ignored.
    format = String()
    version = Integer()


class ImportQuery(Schema):
    dry_run = Boolean(load_default=False)


class WipeIn(Schema):
    confirm = String(required=True, metadata={"description": "Type WIPE"})


# -- answers (for the OpenAPI document; views build them as dicts) ------------------------------

class ItemSummaryOut(Schema):
    id = String()
    name = String()
    type = String()
    is_folder = Boolean()
    parent_id = String(allow_none=True)
    content_format = String()
    is_attached = Boolean()
    read_only = Boolean()
    source = String()
    account_number = String(allow_none=True)
    metadata = Dict()
    created_at = String()
    created_by = String()
    updated_at = String()
    updated_by = String()


class ItemOut(ItemSummaryOut):
    content = String()


class CrumbOut(Schema):
    id = String()
    name = String()


class PathCrumbOut(CrumbOut):
    """A crumb inside another answer (its own name in the document: CrumbOut is a list)."""


class FolderOut(Schema):
    id = String()
    name = String()
    is_attached = Boolean()
    read_only = Boolean()
    children = List(Nested(lambda: FolderOut()))


class DeletedOut(Schema):
    deleted = Raw(metadata={"description": "How many items went (or the file's id)"})


class RevisionOut(Schema):
    id = String()
    number = Integer()
    name = String()
    content = String()
    content_format = String()
    written_at = String()
    written_by = String()
    replaced_at = String()


class HitOut(ItemSummaryOut):
    score = Float()
    snippet = String()
    highlights = List(List(Integer()), metadata={"description": "[start, end) in snippet"})
    path = List(Nested(PathCrumbOut))
    folder_path = String()


class SearchOut(Schema):
    query = String()
    total = Integer()
    offset = Integer()
    limit = Integer()
    results = List(Nested(HitOut))


class FileOut(Schema):
    id = String()
    item_id = String()
    filename = String(metadata={"description": "The original name"})
    content_type = String()
    size = Integer()
    created_at = String()
    created_by = String()
    url = String()


class SourceOut(Schema):
    id = String()
    name = String()
    path = String()
    cut = Boolean()


class ContextOut(Schema):
    context = String()
    chars = Integer()
    budget = Integer()
    truncated = Boolean()
    sources = List(Nested(SourceOut))
    attached_folders = List(Nested(PathCrumbOut))
    folders = List(Nested(PathCrumbOut))


class CountsOut(Schema):
    folders = Integer()
    articles = Integer()
    files = Integer()


class ImportOut(Schema):
    dry_run = Boolean()
    created = Integer()
    parent_id = String()
    folders = Integer()
    articles = Integer()
    total = Integer()


class WipeOut(Schema):
    wiped = Dict(metadata={"description": "The counts before: folders, articles, files"})


class SyncIn(Schema):
    companies = Boolean(load_default=True, metadata={"description": "folders, contacts, assets"})
    tickets = Boolean(load_default=True, metadata={"description": "ticket articles"})


class SyncStatusOut(Schema):
    running = Boolean()
    holder = String(allow_none=True)
    done = Integer()
    total = Integer()
    current = String()
    finished_at = Raw(allow_none=True)
    last_result = Raw(allow_none=True)
