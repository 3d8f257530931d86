"""The Codex sync: what Codex knows about each client, as read-only articles in the tree.

Layout (every generated item has ``source = "codex"``, ``read_only = true`` and its Codex
identity in ``metadata`` as ``codex_kind`` / ``codex_id``)::

    /Companies                      found by its marker (or a folder of that name at root)
      /<company name>               a folder per company, found by ``account_number``
        Overview                    the company's own record
        Contacts                    every contact with a role there, one article
        /Assets/<hostname>          one article per asset
        /Tickets/#<number> <subject>  one article per ticket (conversation, hours, status)
        /Archived/...               assets and tickets that disappeared from Codex
    /Archived/<company name>        whole companies that disappeared from Codex

Rules: items are found by their Codex identity, never by name, so a rename in Codex renames
the folder or article in place (same id). Names are made unique among siblings: two companies
with the same name get ``<name> (<account number>)``, and a person's item already holding a
name pushes the generated one aside the same way. Anything a person wrote (``source =
"manual"``) is never changed, moved or deleted — except that it travels with its company's
folder when that company is archived. An entity gone from Codex is moved to an ``Archived``
folder, never deleted, and moved back if it returns. Content is rendered deterministically and
written only when it differs, so a re-run writes nothing and makes no revisions.

Codex strings are data: every field is escaped so it cannot add markdown structure (headings,
links, HTML, tables, lists), and no link or HTML is built from them. Private notes of tickets
and time-entry notes are internal and are left out: client users may read their own company's
subtree.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from hivematrix.common.service_client import ServiceCallError, ServiceClient
from hivematrix.knowledgetree.graph import GraphError
from hivematrix.knowledgetree.items import (
    MAX_NAME,
    ROOT_ID,
    Item,
    KnowledgeError,
    KnowledgeTree,
    NameTaken,
    _item,
    name_key,
)

#: Who the sync's writes are recorded as.
SYNC_BY = "codex-sync"
COMPANIES = "Companies"
ARCHIVED = "Archived"
PAGE_SIZE = 500
#: Seconds between two search-index commits during a run (see Sync.run).
INDEX_EVERY = 2.0
#: New articles go into the graph this many per statement.
CREATE_BATCH = 200

Progress = Callable[[int, int, str], None]


class CodexError(Exception):
    """Codex could not be read (unreachable, refused, or an unexpected answer)."""


class CodexReader(Protocol):
    """What the sync reads from Codex, one company at a time."""

    def companies(self) -> list[dict[str, Any]]:
        """Every company that is not archived."""

    def contacts(self, account_number: str) -> list[dict[str, Any]]:
        """The contacts with a role at the company."""

    def assets(self, account_number: str) -> list[dict[str, Any]]:
        """The company's assets that are not retired."""

    def tickets(self, account_number: str) -> list[dict[str, Any]]:
        """The company's tickets, with conversations and time entries."""


class HttpCodexReader:
    """Codex's API over HTTP with KnowledgeTree's service token."""

    def __init__(self, client: ServiceClient, page_size: int = PAGE_SIZE) -> None:
        self.client = client
        self.page_size = page_size

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        for attempt in (1, 2):
            try:
                response = self.client.call("codex", path, params=dict(params or {}))
            except ServiceCallError as exc:
                raise CodexError(str(exc)) from exc
            if response.status_code == 401 and attempt == 1:
                self.client.forget_token("codex")  # expired early or Core rotated keys
                continue
            if response.status_code != 200:
                raise CodexError(f"Codex answered {response.status_code} to GET {path}")
            try:
                return response.json()
            except ValueError as exc:
                raise CodexError(f"Codex's answer to GET {path} is not JSON") from exc
        raise CodexError(f"Codex refused KnowledgeTree's service token for GET {path}")

    def companies(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = self._get("/api/companies", {"archived": "false", "sort": "account_number",
                                                "limit": self.page_size, "offset": offset})
            items = page.get("items") if isinstance(page, dict) else None
            if not isinstance(items, list):
                raise CodexError("Codex's company list has no items")
            found.extend(items)
            offset += len(items)
            if not items or offset >= int(page.get("total", 0)):
                return found

    def _company_list(self, account_number: str, what: str,
                      params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        rows = self._get(f"/api/companies/{quote(account_number, safe='')}/{what}", params)
        if not isinstance(rows, list):
            raise CodexError(f"Codex's {what} of {account_number} is not a list")
        return rows

    def contacts(self, account_number: str) -> list[dict[str, Any]]:
        return self._company_list(account_number, "contacts")

    def assets(self, account_number: str) -> list[dict[str, Any]]:
        return self._company_list(account_number, "assets")

    def tickets(self, account_number: str) -> list[dict[str, Any]]:
        return self._company_list(account_number, "tickets", {"details": "true"})


def reader_from_settings(settings: Mapping[str, Any]) -> HttpCodexReader:
    """A reader calling Codex as the ``knowledgetree`` service, outside any Flask app."""
    client = ServiceClient(
        service_name=str(settings.get("SERVICE_NAME") or "knowledgetree"),
        secret=settings.get("SERVICE_SECRET"), core_url=str(settings["CORE_SERVICE_URL"]),
        services_file=str(settings["SERVICES_FILE"]),
        timeout=float(settings.get("HTTP_TIMEOUT") or 30.0))
    return HttpCodexReader(client)


# -- markdown that cannot carry structure -------------------------------------------------

# Backslash-escaping any ASCII punctuation is literal in CommonMark; these are the characters
# that can open emphasis, code, links, images, HTML, entities, headings, lists, tables,
# blockquotes or thematic breaks.
_SIGNIFICANT = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&=])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPACES = re.compile(r"\s+")
_NAME_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]")


def text_of(value: object) -> str:
    """A Codex field as text (``None`` as nothing)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def md_inline(value: object) -> str:
    """One field on one line, every markdown-significant character escaped."""
    flat = _SPACES.sub(" ", _CONTROL.sub(" ", text_of(value))).strip()
    return _SIGNIFICANT.sub(r"\\\1", flat)


def md_block(value: object) -> str:
    """Multi-line text (a description, a message): lines kept (hard breaks), paragraphs kept,
    each line escaped and unindented so it can be neither code nor structure."""
    text = _CONTROL.sub(" ", text_of(value).replace("\r\n", "\n").replace("\r", "\n"))
    paragraphs: list[list[str]] = [[]]
    for raw in text.split("\n"):
        line = md_inline(raw)
        if line:
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    return "\n\n".join("\\\n".join(lines) for lines in paragraphs if lines)


def _field(label: str, value: object) -> str:
    shown = md_inline(value)
    return f"- **{label}:** {shown}" if shown else f"- **{label}:** —"


def _footer() -> str:
    return "*Generated from Codex by the sync; change it in Codex, not here\\.*"


def render_overview(company: Mapping[str, Any]) -> str:
    lines = [f"# {md_inline(company.get('name'))}", "",
             _field("Account number", company.get("account_number")),
             _field("Description", company.get("description")),
             _field("Billing plan", company.get("billing_plan")),
             _field("Support level", company.get("support_level")),
             _field("Contract term", company.get("contract_term_length")),
             _field("Contract start", company.get("contract_start_date")),
             _field("Contract end", company.get("contract_end_date")),
             _field("Compliance level", company.get("compliance_level")),
             _field("Domains", ", ".join(text_of(d) for d in company.get("domains") or [])),
             _field("Main phone", company.get("main_phone")),
             _field("Address", company.get("address")),
             _field("Active", company.get("active")),
             _field("Parent company", company.get("parent_account_number")),
             "", _footer(), ""]
    return "\n".join(lines)


def render_contacts(company: Mapping[str, Any], contacts: Iterable[Mapping[str, Any]]) -> str:
    people = sorted(contacts, key=lambda row: (text_of(row.get("name")).casefold(),
                                                text_of(row.get("id"))))
    lines = [f"# Contacts of {md_inline(company.get('name'))}", ""]
    if not people:
        lines += ["No contacts in Codex\\.", ""]
    account = company.get("account_number")
    for person in people:
        roles = sorted(text_of(role.get("role")) for role in person.get("roles") or []
                       if role.get("account_number") == account)
        lines += [f"## {md_inline(person.get('name')) or 'Unnamed'}", "",
                  _field("Title", person.get("title")),
                  _field("Email", person.get("email")),
                  _field("Other emails", ", ".join(
                      text_of(e) for e in person.get("secondary_emails") or [])),
                  _field("Work phone", person.get("work_phone")),
                  _field("Mobile phone", person.get("mobile_phone")),
                  _field("Role", ", ".join(roles)),
                  _field("Active", person.get("active")),
                  _field("VIP", person.get("vip")), ""]
    lines += [_footer(), ""]
    return "\n".join(lines)


def _day(value: object) -> str:
    # Day precision: "last seen" changes every RMM sync, and a revision per hour is noise.
    return text_of(value)[:10]


def render_asset(asset: Mapping[str, Any]) -> str:
    lines = [f"# {md_inline(asset.get('hostname'))}", "",
             _field("Category", asset.get("device_category")),
             _field("Billing type", asset.get("billing_type")),
             _field("Operating system", asset.get("operating_system")),
             _field("Manufacturer", asset.get("manufacturer")),
             _field("Model", asset.get("model")),
             _field("Serial number", asset.get("serial_number")),
             _field("Internal IP", asset.get("internal_ip")),
             _field("External IP", asset.get("external_ip")),
             _field("Domain", asset.get("domain")),
             _field("Last logged-in user", asset.get("last_logged_in_user")),
             _field("Last seen", _day(asset.get("last_seen"))),
             _field("Patch status", asset.get("patch_status")),
             _field("Antivirus", asset.get("antivirus_product")),
             _field("Purchased", asset.get("purchase_date")),
             _field("Warranty until", asset.get("warranty_expiry")),
             _field("Source", asset.get("source"))]
    description = md_block(asset.get("description"))
    if description:
        lines += ["", "## Description", "", description]
    lines += ["", _footer(), ""]
    return "\n".join(lines)


def _hours(value: object) -> str:
    try:
        return f"{float(text_of(value) or 0):.2f}"
    except ValueError:
        return "0.00"


def render_ticket(ticket: Mapping[str, Any]) -> str:
    requester = text_of(ticket.get("requester_name"))
    email = text_of(ticket.get("requester_email"))
    who = f"{requester} ({email})" if requester and email else requester or email
    entries = ticket.get("time_entries") or []
    billable = sum(float(text_of(e.get("hours")) or 0) for e in entries if e.get("billable"))
    lines = [f"# Ticket {md_inline('#' + text_of(ticket.get('number')))}: "
             f"{md_inline(ticket.get('subject'))}", "",
             _field("Status", ticket.get("status")),
             _field("Priority", ticket.get("priority")),
             _field("Type", ticket.get("ticket_type")),
             _field("Requester", who),
             _field("Created", ticket.get("created_at")),
             _field("Updated", ticket.get("updated_at")),
             _field("Closed", ticket.get("closed_at")),
             _field("Hours", _hours(ticket.get("total_hours"))),
             _field("Billable hours logged", f"{billable:.2f}"),
             _field("Time entries", len(entries)),
             "", "## Description", "",
             md_block(ticket.get("description_text")) or "No description\\.", ""]
    public = [c for c in ticket.get("conversations") or [] if not c.get("private")]
    public.sort(key=lambda c: (text_of(c.get("created_at")), text_of(c.get("id"))))
    lines += ["## Conversation", ""]
    if not public:
        lines += ["No messages\\.", ""]
    for number, message in enumerate(public, 1):
        direction = "from the client" if message.get("incoming") else "to the client"
        lines += [f"### {number}\\. {md_inline(message.get('author')) or 'Unknown'}, "
                  f"{direction}, {md_inline(message.get('created_at'))}", "",
                  md_block(message.get("body_text")) or "\\(empty\\)", ""]
    lines += [_footer(), ""]
    return "\n".join(lines)


# -- names --------------------------------------------------------------------------------

def safe_name(value: object, fallback: str) -> str:
    """A Codex string as an item name: no ``/``, ``\\`` or control characters, trimmed."""
    cleaned = _SPACES.sub(" ", _NAME_UNSAFE.sub("-", unicodedata.normalize(
        "NFC", text_of(value)))).strip()
    return (cleaned or fallback)[:MAX_NAME].strip() or fallback[:MAX_NAME]


def with_suffix(base: str, suffix: str) -> str:
    return base[:MAX_NAME - len(suffix)].rstrip() + suffix


def unique_names(wanted: Mapping[str, tuple[str, str]], taken: set[str]) -> dict[str, str]:
    """Names for entities (key -> (base name, disambiguator)) unique among themselves and
    ``taken`` (folded names of the folder's other items): a base used once and free keeps
    its name, every other gets ``<base> (<disambiguator>)``, then a counter."""
    counts: dict[str, int] = {}
    for base, _ in wanted.values():
        counts[name_key(base)] = counts.get(name_key(base), 0) + 1
    used = set(taken)
    names: dict[str, str] = {}
    plain = {key for key, (base, _) in wanted.items()
             if counts[name_key(base)] == 1 and name_key(base) not in taken}
    for key in sorted(plain):
        names[key] = wanted[key][0]
        used.add(name_key(names[key]))
    for key in sorted(set(wanted) - plain):
        base, tag = wanted[key]
        candidate = with_suffix(base, f" ({tag})")
        number = 2
        while name_key(candidate) in used:
            candidate = with_suffix(base, f" ({tag}, {number})")
            number += 1
        names[key] = candidate
        used.add(name_key(candidate))
    return names


def _temporary_name() -> str:
    return f"~sync {uuid.uuid4().hex}"


# -- the run ------------------------------------------------------------------------------

@dataclass
class SyncResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    archived: int = 0
    errors: int = 0
    #: What went wrong, one line per error (the first 100).
    messages: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"created": self.created, "updated": self.updated,
                "unchanged": self.unchanged, "archived": self.archived, "errors": self.errors}

    def fail(self, message: str) -> None:
        self.errors += 1
        if len(self.messages) < 100:
            self.messages.append(message)


Marker = tuple[str, str]


def marker_of(item: Item) -> Marker | None:
    """The Codex identity of a generated item, ``None`` for a person's item."""
    kind = item.metadata.get("codex_kind")
    if item.source != "codex" or not isinstance(kind, str):
        return None
    return kind, text_of(item.metadata.get("codex_id"))


def _metadata(kind: str, key: str) -> dict[str, str]:
    return {"codex_kind": kind, "codex_id": key}


@dataclass
class _Wanted:
    """An item as the sync wants it."""

    kind: str
    key: str
    name: str
    type: str
    content: str = ""
    account_number: str | None = None


def _changes(item: Item, wanted: _Wanted) -> dict[str, Any]:
    """What differs between a generated item and how the sync wants it (its name aside)."""
    fields: dict[str, Any] = {}
    if item.type == "article":
        if item.content != wanted.content:
            fields["content"] = wanted.content
        if item.content_format != "markdown":
            fields["content_format"] = "markdown"
    if item.metadata != _metadata(wanted.kind, wanted.key):
        fields["metadata"] = _metadata(wanted.kind, wanted.key)
    if wanted.account_number and item.account_number != wanted.account_number:
        fields["account_number"] = wanted.account_number
    return fields


class _Folder:
    """One folder's children as the run found them, kept current as the run writes, and
    indexed by Codex identity (a Tickets folder may hold thousands)."""

    def __init__(self, item: Item, children: list[Item]) -> None:
        self.item = item
        self.children: dict[str, Item] = {}
        self._marked: dict[Marker, Item] = {}
        for child in children:
            self.put(child)

    def put(self, item: Item) -> None:
        self.drop(item.id)
        self.children[item.id] = item
        mark = marker_of(item)
        if mark is not None:
            self._marked[mark] = item

    def drop(self, item_id: str) -> None:
        gone = self.children.pop(item_id, None)
        mark = marker_of(gone) if gone is not None else None
        if mark is not None and self._marked.get(mark) is gone:
            del self._marked[mark]

    def generated(self, kind: str) -> dict[str, Item]:
        return {key: item for (found, key), item in self._marked.items() if found == kind}

    def find(self, kind: str, key: str = "") -> Item | None:
        return self._marked.get((kind, key))

    def manual_keys(self, but: Iterable[str] = ()) -> set[str]:
        """Folded names of the children that are not the sync's (kinds in ``but``)."""
        skip = set(but)
        return {name_key(child.name) for child in self.children.values()
                if (marker_of(child) or ("", ""))[0] not in skip}


class Sync:
    """One run over a tree and a Codex reader; see the module docstring."""

    def __init__(self, tree: KnowledgeTree, reader: CodexReader, *,
                 progress: Progress | None = None) -> None:
        self.tree = tree
        self.reader = reader
        self.progress = progress
        self.result = SyncResult()

    # -- graph helpers ---------------------------------------------------------------

    def _folder(self, item: Item) -> _Folder:
        return _Folder(item, self.tree.children(item.id))

    def _create(self, parent: _Folder, wanted: _Wanted) -> Item:
        created = self.tree.create(
            parent.item.id, wanted.name, wanted.type, by=SYNC_BY, content=wanted.content,
            read_only=True, source="codex", account_number=wanted.account_number,
            metadata=_metadata(wanted.kind, wanted.key), allow_read_only=True)
        parent.put(created)
        self.result.created += 1
        return created

    def _create_articles(self, parent: _Folder, wanted: list[_Wanted]) -> None:
        """New articles, many per statement; one at a time if a person's item raced in."""
        for start in range(0, len(wanted), CREATE_BATCH):
            batch = wanted[start:start + CREATE_BATCH]
            entries = [{"name": w.name, "type": "article", "content": w.content,
                        "read_only": True, "source": "codex",
                        "metadata": _metadata(w.kind, w.key)} for w in batch]
            try:
                self.result.created += self.tree.import_items(
                    parent.item.id, entries, by=SYNC_BY, allow_read_only=True)
            except NameTaken:
                for one in batch:
                    with self._guard(f"{parent.item.name}/{one.name}"):
                        self._create(parent, one)

    def _move(self, source: _Folder, item: Item, target: _Folder,
              name: str | None = None) -> Item:
        """Move ``item`` from ``source`` into ``target`` as ``name`` (default: its own). A
        name taken in either folder goes through a temporary one, so nothing clashes; when
        ``name`` is taken in ``target`` the item keeps the temporary name (the caller renames
        it once the blocker moved)."""
        final = item.name if name is None else name
        in_target = {name_key(c.name) for c in target.children.values() if c.id != item.id}
        in_source = {name_key(c.name) for c in source.children.values() if c.id != item.id}
        if name_key(final) in in_target:
            final = _temporary_name()
        if final != item.name:
            step = final if name_key(final) not in in_source else _temporary_name()
            item = self.tree.update(item.id, by=SYNC_BY, name=step, allow_read_only=True)
        moved = self.tree.move(item.id, target.item.id, by=SYNC_BY, allow_read_only=True)
        source.drop(item.id)
        target.put(moved)
        if moved.name != final:
            moved = self._rename(target, moved, final)
        return moved

    def _rename(self, parent: _Folder, item: Item, name: str) -> Item:
        renamed = self.tree.update(item.id, by=SYNC_BY, name=name, allow_read_only=True)
        parent.put(renamed)
        return renamed

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        """One item's failure is counted and reported; the run goes on."""
        try:
            yield
        except (KnowledgeError, GraphError) as exc:
            self.result.fail(f"{what}: {exc}")

    def _top(self, kind: str, name: str) -> _Folder:
        """A folder at root the sync keeps (``/Companies``, ``/Archived``): found by its
        marker, else a person's folder of that name is used as is, else created."""
        root = self._folder(self.tree.get(ROOT_ID))
        found = root.find(kind)
        if found is None:
            found = next((child for child in root.children.values()
                          if child.is_folder and name_key(child.name) == name_key(name)), None)
        if found is None:
            free = unique_names({kind: (name, "Codex")}, root.manual_keys())[kind]
            found = self._create(root, _Wanted(kind, "", free, "folder"))
        else:
            self.result.unchanged += 1
        return self._folder(found)

    def _upsert(self, parent: _Folder, wanted: _Wanted, archive: _Folder | None = None,
                pending: list[tuple[_Folder, Item, str]] | None = None) -> Item:
        """Make one generated item as wanted under ``parent``; it may be found in ``parent``
        or (when it came back to Codex) in ``archive``. A rename blocked by a sibling that
        is itself about to be renamed is left in ``pending``."""
        item = parent.find(wanted.kind, wanted.key)
        changed = False
        if item is None and archive is not None:
            item = archive.find(wanted.kind, wanted.key)
            if item is not None:
                item = self._move(archive, item, parent, wanted.name)
                changed = True
        if item is None:
            return self._create(parent, wanted)
        fields = _changes(item, wanted)
        blocked = False
        if item.name != wanted.name:
            # One update with the content, so an article gets one revision, not two.
            try:
                item = self.tree.update(item.id, by=SYNC_BY, allow_read_only=True,
                                        name=wanted.name, **fields)
                fields, changed = {}, True
            except NameTaken:
                if pending is None:
                    raise
                blocked = True
        if fields:
            item = self.tree.update(item.id, by=SYNC_BY, allow_read_only=True, **fields)
            changed = True
        parent.put(item)
        if blocked:
            assert pending is not None
            pending.append((parent, item, wanted.name))  # counted once it is renamed
            return item
        if changed:
            self.result.updated += 1
        else:
            self.result.unchanged += 1
        return item

    def _settle(self, pending: list[tuple[_Folder, Item, str]]) -> None:
        """Renames that were blocked by each other (A→B while B→A): park, then rename."""
        parked = []
        for parent, item, name in pending:
            with self._guard(f"{parent.item.name}/{item.name}"):
                parked.append((parent, self._rename(parent, item, _temporary_name()), name))
        for parent, item, name in parked:
            with self._guard(f"{parent.item.name}/{name}"):
                self._rename(parent, item, name)
                self.result.updated += 1

    def _archive(self, parent: _Folder, item: Item, archive: _Folder) -> None:
        taken = {name_key(child.name) for child in archive.children.values()}
        mark = marker_of(item)
        tag = mark[1] if mark and mark[1] else "archived"
        self._move(parent, item, archive, unique_names({"x": (item.name, tag)}, taken)["x"])
        self.result.archived += 1

    # -- the run ---------------------------------------------------------------------

    def run(self, *, companies: bool = True, tickets: bool = True) -> SyncResult:
        listed = self.reader.companies()  # unreadable: nothing is archived on a failed read
        by_account = {text_of(c.get("account_number")): c for c in listed
                      if text_of(c.get("account_number"))}
        top = self._top("companies", COMPANIES)
        folders = self._company_folders()
        # The search index is told in batches: after a company, once the last commit is
        # INDEX_EVERY seconds old (a commit costs a few fsyncs; one per company would add
        # minutes to a first sync of a thousand), and at the end.
        with self.tree.search_batch():
            if companies:
                self._archive_companies(top, folders, set(by_account))
            company_folders = self._place_companies(top, folders, by_account)
            self.tree.search_flush()
            total = len(company_folders)
            for done, account in enumerate(sorted(company_folders)):
                company = by_account[account]
                if self.progress:
                    self.progress(done, total, text_of(company.get("name")))
                try:
                    self._company(self._folder(self.tree.get(company_folders[account].id)),
                                  company, companies=companies, tickets=tickets)
                except (CodexError, KnowledgeError, GraphError) as exc:
                    self.result.fail(f"{account}: {exc}")
                self.tree.search_flush(every=INDEX_EVERY)
        if self.progress:
            self.progress(total, total, "")
        return self.result

    def _archive_companies(self, top: _Folder, folders: Mapping[str, Item],
                           listed: set[str]) -> None:
        """Company folders under /Companies whose company Codex no longer lists go, whole
        (a person's notes in them too), to /Archived."""
        archive: _Folder | None = None
        for account, folder in sorted(folders.items()):
            if account in listed or folder.parent_id != top.item.id:
                continue
            if archive is None:
                archive = self._top("archive-root", ARCHIVED)
            with self._guard(folder.name):
                self._archive(top, folder, archive)

    def _place_companies(self, top: _Folder, folders: Mapping[str, Item],
                         by_account: Mapping[str, Mapping[str, Any]]) -> dict[str, Item]:
        """Every listed company's folder under /Companies, named as Codex names it."""
        names = unique_names({account: (safe_name(c.get("name"), account), account)
                              for account, c in by_account.items()},
                             top.manual_keys(but=("company",)))
        pending: list[tuple[_Folder, Item, str]] = []
        placed: dict[str, Item] = {}
        for account in sorted(by_account):
            folder = folders.get(account)
            with self._guard(names[account]):
                if folder is not None and folder.parent_id != top.item.id:
                    # Back in Codex after being archived: back under /Companies.
                    source = self._folder(self.tree.get(folder.parent_id or ROOT_ID))
                    self._move(source, folder, top, names[account])
                placed[account] = self._upsert(top, _Wanted(
                    "company", account, names[account], "folder", account_number=account),
                    pending=pending)
        self._settle(pending)
        return placed

    def _company_folders(self) -> dict[str, Item]:
        """Company folders by account number, wherever they are (under /Companies or
        archived)."""
        rows = self.tree.store.query(
            "MATCH (parent:ContextItem)-[:PARENT_OF]->(folder:ContextItem) "
            "WHERE folder.type = 'folder' AND folder.source = 'codex' "
            "AND folder.account_number IS NOT NULL "
            "RETURN properties(folder) AS item, parent.id AS parent_id "
            "ORDER BY folder.created_at")
        found: dict[str, Item] = {}
        for row in rows:
            item = _item(row["item"], row["parent_id"])
            if item.account_number and item.account_number not in found:
                found[item.account_number] = item
        return found

    def _company(self, folder: _Folder, company: Mapping[str, Any], *, companies: bool,
                 tickets: bool) -> None:
        account = text_of(company.get("account_number"))
        own = ("overview", "contacts", "assets", "tickets", "archive")
        names = unique_names({"overview": ("Overview", "Codex"), "contacts": ("Contacts", "Codex"),
                              "assets": ("Assets", "Codex"), "tickets": ("Tickets", "Codex"),
                              "archive": (ARCHIVED, "Codex")}, folder.manual_keys(but=own))
        archive_item = folder.find("archive")
        archive = self._folder(archive_item) if archive_item else None

        def archive_folder() -> _Folder:
            nonlocal archive
            if archive is None:
                archive = self._folder(self._create(
                    folder, _Wanted("archive", "", names["archive"], "folder")))
            return archive

        if archive is not None:
            self._upsert(folder, _Wanted("archive", "", names["archive"], "folder"))
        if companies:
            contacts = self.reader.contacts(account)
            assets = self.reader.assets(account)
            self._upsert(folder, _Wanted("overview", "", names["overview"], "article",
                                         render_overview(company)))
            self._upsert(folder, _Wanted("contacts", "", names["contacts"], "article",
                                         render_contacts(company, contacts)))
            self._entities(folder, "assets", names["assets"], "asset", {
                text_of(a.get("id")): (safe_name(a.get("hostname"), f"Asset {a.get('id')}"),
                                       render_asset(a)) for a in assets}, archive,
                archive_folder)
        if tickets:
            rows = self.reader.tickets(account)
            self._entities(folder, "tickets", names["tickets"], "ticket", {
                text_of(t.get("id")): (safe_name(
                    f"#{text_of(t.get('number')) or t.get('id')} {text_of(t.get('subject'))}",
                    f"Ticket {t.get('id')}"), render_ticket(t)) for t in rows}, archive,
                archive_folder)

    def _entities(self, company: _Folder, folder_kind: str, folder_name: str, kind: str,
                  wanted: Mapping[str, tuple[str, str]], archive: _Folder | None,
                  archive_folder: Callable[[], _Folder]) -> None:
        """One generated folder (Assets, Tickets) and an article per entity in it."""
        holder = self._folder(self._upsert(company, _Wanted(folder_kind, "", folder_name,
                                                            "folder")))
        present = holder.generated(kind)
        for key, item in sorted(present.items()):
            if key not in wanted:
                with self._guard(f"{holder.item.name}/{item.name}"):
                    self._archive(holder, item, archive_folder())
        names = unique_names({key: (base, f"id {key}") for key, (base, _) in wanted.items()},
                             holder.manual_keys(but=(kind,)))
        pending: list[tuple[_Folder, Item, str]] = []
        new: list[_Wanted] = []
        for key in sorted(wanted, key=lambda k: (len(k), k)):
            one = _Wanted(kind, key, names[key], "article", wanted[key][1])
            returning = archive is not None and archive.find(kind, key) is not None
            if holder.find(kind, key) is None and not returning:
                new.append(one)
                continue
            with self._guard(f"{holder.item.name}/{one.name}"):
                self._upsert(holder, one, archive, pending)
        self._settle(pending)
        self._create_articles(holder, new)


def run(tree: KnowledgeTree, reader: CodexReader, *, companies: bool = True,
        tickets: bool = True, progress: Progress | None = None) -> SyncResult:
    """Sync Codex into the tree. ``companies`` keeps the company folders, overviews, contacts
    and assets (and archives companies gone from Codex); ``tickets`` the ticket articles.

    :raises CodexError: the company list could not be read (nothing was changed).
    """
    return Sync(tree, reader, progress=progress).run(companies=companies, tickets=tickets)
