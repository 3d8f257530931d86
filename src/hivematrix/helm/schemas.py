"""Request and response shapes of Helm's JSON API (for the OpenAPI document).

The views check their input themselves, so that a bad entry is named by its index in the
batch and a bad filter by its name, with the status codes the API promises.
"""

from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Dict, Integer, List, Nested, String


class LogEntryIn(Schema):
    level = String(required=True, metadata={
        "description": "DEBUG, INFO, WARNING, ERROR or CRITICAL (WARN and FATAL accepted)"})
    message = String(required=True, metadata={
        "description": "Cut to 10,000 characters; the entry's context then says `truncated`"})
    timestamp = DateTime(metadata={"description": "ISO 8601; the time of receipt if omitted"})
    logger = String(allow_none=True)
    correlation_id = String(allow_none=True)
    user = String(allow_none=True)
    pid = Integer(metadata={"description": "With `seq` and `timestamp`: the record's identity"})
    seq = Integer(metadata={"description": "The writing process's record counter"})
    context = Dict(metadata={"description": "Extra fields; unknown top-level fields go here too"})


class IngestIn(Schema):
    logs = List(Nested(LogEntryIn), required=True,
                metadata={"description": "At most 10,000 entries, stored all or none"})


class IngestOut(Schema):
    received = Integer()
    stored = Integer(metadata={"description": "Entries not stored before"})
    duplicates = Integer(metadata={"description": "Entries already stored (same fingerprint)"})


class LogQueryIn(Schema):
    service = String()
    level = String(metadata={"description": "At or above this level; UNKNOWN selects lines "
                                            "that were not log records"})
    correlation_id = String()
    user = String()
    since = DateTime(metadata={"description": "ISO 8601"})
    until = DateTime(metadata={"description": "ISO 8601"})
    q = String(metadata={"description": "Substring of the message (case-insensitive)"})
    limit = Integer(metadata={"description": "1 to 1000 (default 100)"})
    before_id = Integer(metadata={"description": "The next page: entries after this one"})
    after_id = Integer(metadata={"description": "Entries stored after this one (live view)"})


class LogEntryOut(Schema):
    id = Integer()
    timestamp = String()
    service = String()
    level = String()
    logger = String(allow_none=True)
    message = String()
    correlation_id = String(allow_none=True)
    user = String(allow_none=True)
    context = Dict()
    source = String(metadata={"description": "`push` or `file`"})


class LogEntryDetailOut(LogEntryOut):
    """One entry on its own (a separate name keeps the OpenAPI components unambiguous)."""


class LogPageOut(Schema):
    logs = List(Nested(LogEntryOut))
    count = Integer()
    limit = Integer()
    latest_id = Integer(metadata={"description": "Highest id stored so far (live view)"})
    next_before_id = Integer(allow_none=True,
                             metadata={"description": "Pass as before_id for older entries"})
    has_more = Boolean()
