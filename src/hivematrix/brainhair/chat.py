"""The turn runner: one user message in, the model's reply out as chunks and a stored message.

:func:`start_turn` runs in the request: it parses and authorises, picks the filter level,
stores the user's message (filtered), claims the session for this turn (one conditional
UPDATE: at most one running turn per session, whichever worker gets the request) and starts
:func:`run_turn` in a thread with its own database sessions — never the request's. The
user's token lives only in that thread's memory, for the tools to call services as the user.

Everything the model says is filtered before it is shown or stored: streamed text is held
back until a sentence or line is complete, then filtered and emitted, so no unfiltered piece
ever reaches the buffer.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from sqlalchemy import update
from sqlalchemy.orm import Session

from hivematrix.brainhair import approvals, buffer, prompt, sessions
from hivematrix.brainhair.backends.base import Backend, Event, HistoryMessage, ToolResult
from hivematrix.brainhair.errors import BrainhairError
from hivematrix.brainhair.models import ChatMessage, ChatSession
from hivematrix.brainhair.tools.base import BearerServices, Registry, ToolContext, UserServices
from hivematrix.brainhair.tools.executor import TurnExecutor
from hivematrix.brainhair.tools.session import title_tool
from hivematrix.common.db import Database, utcnow

log = logging.getLogger("hivematrix.brainhair.chat")

MAX_MESSAGE = 20_000
FILTER_CHOICES = ("none",)
#: Text held back while waiting for a sentence end is let out (filtered) past this size.
MAX_PENDING = 2_000
STOPPED_TEXT = "Stopped by the user."
SENTENCE_END = re.compile(r"[.!?:;](?=\s)|\n")
#: A period after these (or after one letter, an initial) does not end a sentence: cutting
#: "Mr. | Smith" or "John S. | Smith" would hide the name from the filter.
ABBREVIATIONS = frozenset({"mr", "mrs", "ms", "mx", "dr", "prof", "sr", "jr", "st", "mt",
                           "rev", "hon", "capt", "sgt", "lt", "gen", "col", "e.g", "i.e", "vs",
                           "etc", "no", "inc", "ltd", "co", "corp", "dept", "approx"})
_WORD_BEFORE = re.compile(r"([\w.]+)$")


@dataclass(frozen=True)
class TurnInput:
    message: str
    session_id: str | None = None
    ticket_number: str | None = None
    account_number: str | None = None
    unfiltered: bool = False


def _optional_text(body: Mapping[str, Any], name: str, max_length: int) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BrainhairError(f"{name}: expected a string", field=name)
    value = value.strip()
    if len(value) > max_length:
        raise BrainhairError(f"{name}: longer than {max_length} characters", field=name)
    return value or None


def parse(body: Any) -> TurnInput:
    """The fields of ``POST /api/chat``; each refusal names its field."""
    if not isinstance(body, Mapping):
        raise BrainhairError("The body must be a JSON object.", field="body")
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        raise BrainhairError("message: expected a non-empty string", field="message")
    if len(message) > MAX_MESSAGE:
        raise BrainhairError(f"message: longer than {MAX_MESSAGE} characters", field="message")
    chosen = body.get("filter")
    if chosen is not None and chosen not in FILTER_CHOICES:
        raise BrainhairError("filter: the only choice is \"none\" (admins); leave it out for "
                             "the company's level", field="filter")
    return TurnInput(message=message.strip(),
                     session_id=_optional_text(body, "session_id", 36),
                     ticket_number=_optional_text(body, "ticket_number", 50),
                     account_number=_optional_text(body, "account_number", 50),
                     unfiltered=chosen == "none")


def company_level(services: UserServices, account_number: str, default: str) -> str:
    """The filter level of a company: its Codex compliance level, fetched as the user.

    When Codex cannot say (down, unknown company, not allowed), the default applies.
    """
    from hivematrix.brainhair.phi import level_for_compliance

    try:
        response = services.call("codex", f"/api/companies/{quote(account_number, safe='')}")
    except Exception as exc:  # any failure to learn the level falls back to the default
        log.warning("compliance level of %s unavailable: %s", account_number, exc)
        return default
    if response.status_code != 200:
        return default
    try:
        level = response.json().get("compliance_level")
    except (ValueError, AttributeError):
        return default
    return str(level_for_compliance(level, default=default)) if level else default


#: How long a process keeps the list of Codex's company names and account numbers.
COMPANY_TERMS_SECONDS = 300.0
COMPANY_TERMS_MAX = 5_000


def company_terms(app: Any, services: UserServices) -> frozenset[str]:
    """Codex's company names and account numbers, read as the user (staff see them all) and
    kept a few minutes per process: they are what the platform works with, so the filter
    keeps them as they are in the user's message and the model's reply ("Beta Law" is a
    client, not a person to shorten to "Beta L."). Codex unreachable: what was known, or
    nothing — the filter then errs on the side of replacing."""
    cached: tuple[float, frozenset[str]] | None = app.extensions.get("brainhair.company_terms")
    now = time.monotonic()
    if cached and cached[0] > now:
        return cached[1]
    terms: set[str] = set()
    offset = 0
    try:
        while offset < COMPANY_TERMS_MAX:
            response = services.call("codex", "/api/companies",
                                     params={"limit": 500, "offset": offset})
            if response.status_code != 200:
                raise ValueError(f"Codex answered {response.status_code}")
            body = response.json()
            items = body.get("items") or []
            for item in items:
                terms.update(str(item.get(key) or "").strip()
                             for key in ("name", "account_number"))
            offset += len(items)
            if not items or offset >= int(body.get("total") or 0):
                break
    except Exception as exc:  # the filter still works without the list, only more eagerly
        log.warning("company names unavailable: %s", exc)
        return cached[1] if cached else frozenset()
    found = frozenset(term for term in terms if term)
    app.extensions["brainhair.company_terms"] = (now + COMPANY_TERMS_SECONDS, found)
    return found


def filter_text(text: str, level: str, allow: Iterable[str] = ()) -> tuple[str, bool]:
    if level == "none" or not text:
        return text, False
    from hivematrix.brainhair.phi import get_filter

    clean, changed = get_filter().filter_text(text, level, allow=allow)
    return str(clean), bool(changed)


class StreamFilter:
    """Holds streamed text until a sentence or line is complete, then filters it.

    A name split over two deltas ("John" + " Smith") is still seen whole by the filter.
    """

    def __init__(self, level: str, allow: Iterable[str] = ()) -> None:
        self.level = level
        #: Terms the filter keeps (a live set: the turn's tool data adds to it).
        self.allow = allow
        self.pending = ""
        self.shown: list[str] = []
        self.changed = False

    def feed(self, text: str) -> str:
        self.pending += text
        cut = 0
        for match in SENTENCE_END.finditer(self.pending):
            if not _abbreviation_before(self.pending, match.start()):
                cut = match.end()
        if not cut and len(self.pending) > MAX_PENDING:
            cut = self.pending.rfind(" ", 0, MAX_PENDING) + 1 or MAX_PENDING
        if not cut:
            return ""
        ready, self.pending = self.pending[:cut], self.pending[cut:]
        return self._filtered(ready)

    def flush(self) -> str:
        ready, self.pending = self.pending, ""
        return self._filtered(ready) if ready else ""

    def _filtered(self, text: str) -> str:
        clean, changed = filter_text(text, self.level, self.allow)
        self.changed = self.changed or changed
        self.shown.append(clean)
        return clean

    @property
    def text(self) -> str:
        return "".join(self.shown)


def _abbreviation_before(text: str, dot: int) -> bool:
    """Whether the period at ``dot`` closes an initial or a title rather than a sentence."""
    if text[dot] != ".":
        return False
    found = _WORD_BEFORE.search(text, 0, dot)
    word = found.group(1).lower() if found else ""
    return len(word) == 1 or word in ABBREVIATIONS


class ChunkWriter:
    """Appends a turn's chunks, one transaction each, in order (the executor may write from
    the backend's threads)."""

    def __init__(self, database: Database, response_id: str) -> None:
        self.database = database
        self.response_id = response_id
        self._lock = threading.Lock()

    def emit(self, kind: str, payload: Mapping[str, Any]) -> None:
        with self._lock, self.database.transaction() as db:
            buffer.append(db, self.response_id, kind, payload)

    def finish(self, work: Callable[[Session], None]) -> None:
        with self._lock, self.database.transaction() as db:
            work(db)


class StopFlag:
    """``should_stop()`` for the backend and the approvals: the stop request is a column of
    the response, set by whichever worker got ``/api/chat/stop``; read at most every
    ``every`` seconds."""

    def __init__(self, database: Database, response_id: str, every: float = 0.25,
                 idle: Callable[[], bool] | None = None) -> None:
        self.database = database
        self.response_id = response_id
        self.every = every
        self.idle = idle
        #: True when the turn was ended for saying nothing too long, not by the user.
        self.timed_out = False
        self._checked = float("-inf")
        self._stopped = False
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        with self._lock:
            if not self._stopped and self.idle is not None and self.idle():
                self._stopped = self.timed_out = True
            if self._stopped or time.monotonic() - self._checked < self.every:
                return self._stopped
            self._checked = time.monotonic()
            with self.database.transaction() as db:
                self._stopped = buffer.stop_requested(db, self.response_id)
            return self._stopped


@dataclass
class Turn:
    """What the thread needs; kept in memory only (the token never reaches the database)."""

    response_id: str
    session_id: str
    user: Mapping[str, Any]
    token: str
    level: str
    message: str
    history: list[HistoryMessage]
    system_prompt: str
    registry: Registry
    backend: Backend
    services: UserServices
    approval_seconds: float = 120.0
    approval_poll: float = 0.2
    #: A turn with no event for this long (not counting tools running or waiting for an
    #: approval) is ended as failed.
    idle_seconds: float = 120.0
    #: Company names and account numbers the filter keeps (:func:`company_terms`).
    terms: frozenset[str] = frozenset()


def backend_for(app: Any) -> Backend:
    """The app's backend: one injected in ``app.extensions`` (tests), else the configured one."""
    from hivematrix.brainhair.backends.select import make_backend

    backend: Backend | None = app.extensions.get("brainhair.backend")
    if backend is None:
        backend = make_backend(app.config)
        app.extensions["brainhair.backend"] = backend
    return backend


def registry_for(app: Any, database: Database) -> Registry:
    """The tools: one injected in ``app.extensions`` (tests), else every tool of the
    platform; plus ``set_chat_title`` when the registry has none."""
    base: Registry | None = app.extensions.get("brainhair.registry")
    if base is None:
        try:
            from hivematrix.brainhair.tools.registry import default_registry
        except ImportError:
            log.exception("the tool registry cannot be loaded; only the chat title tool is on")
            base = Registry()
        else:
            base = default_registry(database)
        app.extensions["brainhair.registry"] = base
    if base.get("set_chat_title") is not None:
        return base
    return Registry([*base, title_tool(database)])


def history_at(stored: list[ChatMessage], level: str) -> list[HistoryMessage]:
    """The conversation so far as the model may see it at ``level``: messages stored at
    another level (an admin's unfiltered turn, a CJIS turn before a PHI one) are filtered
    again, in one batch."""
    texts = [m.content for m in stored]
    again = [i for i, m in enumerate(stored) if level != "none" and m.filter_level != level]
    if again:
        from hivematrix.brainhair.phi import get_filter

        refiltered = get_filter().filter_many([texts[i] for i in again], level)
        for i, (clean, _changed) in zip(again, refiltered, strict=True):
            texts[i] = str(clean)
    return [HistoryMessage(role="user" if m.role == "user" else "assistant", content=text)
            for m, text in zip(stored, texts, strict=True)]


def start_turn(app: Any, db: Session, user: Mapping[str, Any], token: str,
               body: Any) -> dict[str, str]:
    """Start a turn; returns ``{"response_id", "session_id"}``. Commits ``db`` (the request's
    session) itself, so the turn's rows exist before its thread starts."""
    turn_input = parse(body)
    owner = sessions.owner_of(user)
    database: Database = app.extensions["hivematrix.db"]
    services = BearerServices(app.extensions["hivematrix.service_client"], token)

    if turn_input.unfiltered and user.get("permission_level") != "admin":
        raise BrainhairError("filter: only admins may turn filtering off.", status=403,
                             field="filter")
    if turn_input.session_id:
        session = sessions.get(db, turn_input.session_id, user)
    else:
        session = sessions.create(db, user, ticket_number=turn_input.ticket_number,
                                  account_number=turn_input.account_number)
    if turn_input.unfiltered:
        level = "none"
        approvals.audit(db, owner, "filter.none", session_id=session.id,
                        username=str(user.get("preferred_username") or ""))
    else:
        default = str(app.config["BRAINHAIR_DEFAULT_FILTER"])
        account = session.account_number or turn_input.account_number
        level = company_level(services, account, default) if account else default

    history = history_at(sessions.messages(db, session.id), level)
    known = company_terms(app, services) if level != "none" else frozenset()
    message, changed = filter_text(turn_input.message, level, known)

    response = buffer.create(db, session.id, owner)
    claimed = db.execute(
        update(ChatSession).where(ChatSession.id == session.id,
                                  ChatSession.running_response_id.is_(None))
        .values(running_response_id=response.id).execution_options(synchronize_session=False))
    if getattr(claimed, "rowcount", 0) != 1:
        db.rollback()
        raise BrainhairError("A reply is still running in this session; wait for it or stop "
                             "it first.", status=409, field="session_id")
    sessions.touch(db, session)
    db.add(ChatMessage(session_id=session.id, role="user", content=message,
                       was_filtered=changed, filter_level=level, created_at=utcnow()))
    turn = Turn(
        response_id=response.id, session_id=session.id, user=dict(user), token=token,
        level=level, message=message, history=history,
        system_prompt=prompt.system_prompt(user, level=level,
                                           ticket_number=session.ticket_number,
                                           account_number=session.account_number,
                                           title=session.title),
        registry=registry_for(app, database), backend=backend_for(app), services=services,
        approval_seconds=float(app.config["BRAINHAIR_APPROVAL_SECONDS"]),
        approval_poll=float(app.config.get("BRAINHAIR_APPROVAL_POLL_SECONDS", 0.2)),
        idle_seconds=float(app.config["BRAINHAIR_TURN_IDLE_SECONDS"]), terms=known)
    result = {"response_id": response.id, "session_id": session.id}
    db.commit()
    worker = threading.Thread(target=run_turn, args=(database, turn),
                              name=f"brainhair-turn-{response.id[:8]}", daemon=True)
    threads: list[threading.Thread] = app.extensions.setdefault("brainhair.turns", [])
    threads[:] = [thread for thread in threads if thread.is_alive()]
    threads.append(worker)
    worker.start()
    return result


def run_turn(database: Database, turn: Turn) -> None:
    """Run the backend and record everything; never raises (the response says what failed)."""
    TurnRun(database, turn).run()


class TurnRun:
    """One turn in its worker thread: events to chunks, then the stored reply."""

    def __init__(self, database: Database, turn: Turn) -> None:
        self.database = database
        self.turn = turn
        self.writer = ChunkWriter(database, turn.response_id)
        self._activity_lock = threading.Lock()
        self._last_activity = time.monotonic()
        self._tools_running = 0
        self.stop = StopFlag(database, turn.response_id, idle=self._idle)
        context = ToolContext(user=turn.user, services=turn.services,
                              session_id=turn.session_id, response_id=turn.response_id)
        self.tools = turn.registry.for_level(context.level)
        self.executor = TurnExecutor(
            registry=Registry(self.tools), context=context, database=database,
            level=turn.level, emit=self.writer.emit, should_stop=self.stop,
            approval_seconds=turn.approval_seconds, approval_poll=turn.approval_poll)
        self.executor.terms.update(turn.terms)
        self.text = StreamFilter(turn.level, allow=self.executor.terms)
        self.status = "done"
        self.error: str | None = None

    def run(self) -> None:
        events: Iterator[Event] | None = None
        try:
            events = self._events()
            for event in events:
                if self.stop():  # nothing the model says after a stop is shown
                    self.status = "stopped"
                    break
                self._active()
                self._handle(event)
            if self.status == "done" and self.stop():
                self.status = "stopped"
            if self.status == "stopped" and self.stop.timed_out:
                self.status = "error"
                self.error = (f"The model gave no output for {self.turn.idle_seconds:g} "
                              "seconds; the reply was ended.")
        except Exception:
            log.exception("turn %s failed", self.turn.response_id)
            self.status = "error"
            self.error = "The assistant failed; the error is in Brainhair's log."
        finally:
            closer = getattr(events, "close", None)
            if callable(closer):
                try:
                    closer()  # a generator backend ends its process in its finally
                except Exception:
                    log.exception("backend did not close cleanly")
        try:
            self._emit_text(self.text.flush())
        except Exception:
            log.exception("the last text of turn %s could not be filtered",
                          self.turn.response_id)
        try:
            self.writer.finish(self._record)
        except Exception:
            log.exception("turn %s could not be recorded", self.turn.response_id)
            try:
                self.writer.finish(lambda db: _fail(db, self.turn))
            except Exception:
                log.exception("turn %s could not even be marked failed", self.turn.response_id)

    def _idle(self) -> bool:
        with self._activity_lock:
            return (self._tools_running == 0
                    and time.monotonic() - self._last_activity > self.turn.idle_seconds)

    def _active(self) -> None:
        with self._activity_lock:
            self._last_activity = time.monotonic()

    def _execute(self, name: str, tool_input: dict[str, Any]) -> ToolResult:
        """The executor, with the idle clock paused while a tool runs or waits for approval."""
        with self._activity_lock:
            self._tools_running += 1
        try:
            return self.executor(name, tool_input)
        finally:
            with self._activity_lock:
                self._tools_running -= 1
                self._last_activity = time.monotonic()

    def _events(self) -> Iterator[Event]:
        turn = self.turn
        reason = turn.backend.available()
        if reason is not None:
            return iter([Event(kind="text", text=reason)])
        return iter(turn.backend.run_turn(
            system_prompt=turn.system_prompt, history=turn.history, message=turn.message,
            tools=self.tools, execute=self._execute, should_stop=self.stop))

    def _emit_text(self, piece: str) -> None:
        if piece:
            self.writer.emit("text", {"text": piece})

    def _handle(self, event: Event) -> None:
        level = self.turn.level
        if event.kind == "text":
            self._emit_text(self.text.feed(event.text))
        elif event.kind == "tool_start":
            self._emit_text(self.text.flush())
            self.writer.emit("tool", {"phase": "start", "tool": event.tool, "id": event.tool_id})
        elif event.kind == "tool_end":
            self.writer.emit("tool", {"phase": "end", "tool": event.tool, "id": event.tool_id,
                                      "is_error": event.is_error})
        elif event.kind == "status":
            self.writer.emit("status", {"text": filter_text(event.text, level)[0]})
        elif event.kind == "error":
            self.status = "error"
            self.error = filter_text(event.text, level)[0] or "The assistant failed."

    def _record(self, db: Session) -> None:
        turn, status = self.turn, self.status
        if status == "stopped":
            buffer.append(db, turn.response_id, "status", {"text": STOPPED_TEXT})
        if status == "error":
            buffer.append(db, turn.response_id, "error", {"text": self.error or "failed"})
        buffer.append(db, turn.response_id, "done", {"status": status})
        buffer.finish(db, turn.response_id, status, self.error)
        calls, results = self.executor.record()
        db.add(ChatMessage(session_id=turn.session_id, role="assistant", content=self.text.text,
                           tool_calls=calls or None, tool_results=results or None,
                           was_filtered=self.text.changed or self.executor.filtered,
                           filter_level=turn.level, created_at=utcnow()))
        db.execute(update(ChatSession).where(
            ChatSession.id == turn.session_id,
            ChatSession.running_response_id == turn.response_id).values(
            running_response_id=None, updated_at=utcnow())
            .execution_options(synchronize_session=False))


def _fail(db: Session, turn: Turn) -> None:
    buffer.finish(db, turn.response_id, "error", "The reply could not be stored.")
    db.execute(update(ChatSession).where(ChatSession.id == turn.session_id).values(
        running_response_id=None).execution_options(synchronize_session=False))


def join_turns(app: Any, timeout: float = 30.0) -> None:
    """Wait for this app's running turns (tests, shutdown)."""
    for thread in list(app.extensions.get("brainhair.turns", [])):
        thread.join(timeout)
