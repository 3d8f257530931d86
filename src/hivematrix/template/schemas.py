"""Request and response shapes of the template's JSON API."""

from apiflask import Schema
from apiflask.fields import DateTime, Integer, List, Nested, String
from apiflask.validators import Length, Regexp

from hivematrix.template.models import BODY_MAX, TITLE_MAX


class NoteIn(Schema):
    title = String(required=True, validate=[
        Length(1, TITLE_MAX), Regexp(r"(?s).*\S", error="Title must not be blank.")])
    body = String(load_default="", validate=Length(max=BODY_MAX))


class NoteOut(Schema):
    id = Integer()
    title = String()
    body = String()
    created_by = String()
    created_at = DateTime()


class NoteSummary(Schema):
    id = Integer()
    title = String()
    created_by = String()
    created_at = DateTime()


class DataOut(Schema):
    caller = String(metadata={"description": "`user` or `service`"})
    name = String(metadata={"description": "The user's name or the calling service"})
    permission_level = String(allow_none=True)
    note_count = Integer()
    notes = List(Nested(NoteSummary), metadata={"description": "Latest notes; users only"})
