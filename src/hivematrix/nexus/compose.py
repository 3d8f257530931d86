"""Put the Nexus chrome around a backend's HTML page without re-parsing it.

Nexus touches a page in exactly four places: the ``<html>`` start tag (theme attributes and
classes), the end of ``<head>``, the start of ``<body>`` and the end of ``<body>``. Parsing
and re-serialising the whole document to do that is slow and silently rewrites markup the
backend chose (attribute quoting, entity spelling, whitespace, invalid-but-working nesting).
So this module finds those four spots with byte-level regular expressions and splices the
fragments in; every other byte of the backend's page comes back unchanged.

Contract, in the order a page is read (callers may rely on it):

* **Prolog.** An optional UTF-8 byte order mark, then any mix of whitespace, comments,
  ``<!DOCTYPE ...>`` / ``<!...>`` declarations and ``<?...?>`` processing instructions.
* **``<html>``.** Only an ``<html`` start tag directly after the prolog counts (any case;
  quoted attribute values may contain ``>``). ``data-theme`` and ``data-color-theme`` get the
  chrome's values: an existing attribute keeps its place and quote style and only its value
  changes; a missing one is inserted right after ``<html``. Chrome classes missing from an
  existing ``class`` are appended to its value, otherwise a ``class`` attribute is added. As
  in browsers, only the first of duplicated attributes counts. A page without such a tag (a
  fragment) gets no theme attributes at all: we never invent an ``<html>`` element.
* **``head``** goes right before the first ``</head>`` after ``<html>``; without one, right
  before the ``<body>`` start tag; without that, right after the ``<html>`` start tag; and
  without that, right after the prolog (never before a doctype: that would switch the page
  to quirks mode).
* **``body_start``** goes right after the first real ``<body>`` start tag; without one, right
  after that ``</head>``; without that, where ``head`` went (and after it).
* **``body_end``** goes right before the *last* ``</body>`` after the body's start; without
  one, right before the last ``</html>``; without that, at the very end.

"Real" tags: ``<body>`` and ``</head>`` are looked for with a small tokenizer that skips
comments, bogus comments, every other tag's attributes (``<meta content="<body>">``) and the
raw text of ``script``, ``style``, ``textarea``, ``title``, ``xmp``, ``iframe``,
``noembed``, ``noframes`` and ``noscript``; tag names end at whitespace, ``/`` or ``>``, so
``<bodyx>`` and ``<body-x>`` are not bodies. The tokenizer only runs when a plain search
finds ``<body`` or ``</head`` at all, and stops at the first real one, so on a normal page it
reads just the head. ``</body>`` and ``</html>`` are searched from the end instead, because
tokenizing the whole body would cost far more than the rest of the work: the *last*
``</body>`` is the real one (a script or attribute earlier in the body may spell the string,
nothing sensible follows the real one), unless something after it hides it. A candidate
counts as hidden when the first comment or raw-text delimiter after it is a *closing* one
(``-->``, ``</script>``, ...); then the candidate before it is tried.

Known limits, all on pages that are malformed or odd: a ``</body>`` spelled inside an
attribute value is not recognised as hidden, so if such a page also lacks a real
``</body>``, ``body_end`` lands inside that value; tags with an unclosed quote are read as
text rather than swallowing the rest of the page as browsers do; and a page that mentions
``<body`` (in a comment, say) but has no real body tag costs one tokenizer pass over the
whole page, milliseconds for 100 KB instead of microseconds.

Encodings: the page is never decoded. That is only sound when ASCII bytes mean ASCII
characters, so for encodings where they do not (UTF-16/32, UTF-7, ISO-2022-*, HZ, EBCDIC)
and for unknown encoding names the page is returned unchanged. The common legacy multi-byte
encodings (Shift_JIS, EUC-*, GBK, Big5) are fine: their trailing bytes never collide with
``<``, ``>``, quotes, ``=``, ``/``, ``-`` or whitespace. Fragments are encoded with the
page's encoding; characters it cannot represent become numeric character references.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["COLOR_THEMES", "THEMES", "Chrome", "compose", "is_composable"]

THEMES: tuple[str, ...] = ("light", "dark")
COLOR_THEMES: tuple[str, ...] = (
    "purple", "blue", "green", "orange", "gold", "red", "yellow", "matrix", "bee",
)

_CLASS_LIST = re.compile(r"[\t\n\f\r ]*(?:[A-Za-z0-9_-]+[\t\n\f\r ]*)*")
_CLASS_TOKEN = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Chrome:
    """What Nexus adds around one page. Fragments are already-rendered, already-escaped HTML.

    The theme values and classes end up inside the backend's ``<html>`` tag without any
    escaping, which is why they are checked here rather than trusted.
    """

    theme: str
    color_theme: str
    head: str
    body_start: str
    body_end: str
    html_class: str = ""

    def __post_init__(self) -> None:
        if self.theme not in THEMES:
            raise ValueError(f"theme must be one of {THEMES}, not {self.theme!r}")
        if self.color_theme not in COLOR_THEMES:
            raise ValueError(
                f"color_theme must be one of {COLOR_THEMES}, not {self.color_theme!r}")
        if not isinstance(self.html_class, str) or not _CLASS_LIST.fullmatch(self.html_class):
            raise ValueError(
                "html_class must be space-separated tokens of letters, digits, '_' and '-', "
                f"not {self.html_class!r}")


def is_composable(content_type: str | None) -> bool:
    """Whether a response with this ``Content-Type`` gets the chrome: ``text/html`` only.

    ``application/xhtml+xml`` is deliberately excluded: browsers parse it as XML, where a
    single non-well-formed byte in our fragments (an HTML-style ``<link>``, a named entity)
    would blank the whole page, and where tag names are case-sensitive and namespaced.
    """
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == "text/html"


# --- the grammar -------------------------------------------------------------------------
# Possessive quantifiers and atomic groups throughout: every construct has one way to match,
# so a malformed page costs a linear scan, never catastrophic backtracking.

_NAME_ENDS = rb"(?=[\t\n\f\r />])"  # what may follow a tag name (so <bodyx> is not <body>)
_VALUE = rb"(?:\"[^\"]*+\"|'[^']*+'|(?![\"'])[^\t\n\f\r >]*+)"  # unclosed quotes fail
# One attribute, for reading the <html> tag's; names may not start with '=' (see _ATTRS).
_ATTRIBUTE = re.compile(
    rb"(?P<name>[^\t\n\f\r />=][^\t\n\f\r />=]*+)"
    rb"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(?P<value>" + _VALUE + rb"))?+"
)
# A tag's attribute list, up to (not including) its closing '>'. It follows the HTML
# tokenizer except for malformed corners (an attribute name starting with '=', an unclosed
# quote), where the tag simply fails to match and its '<' is read as text.
_ATTRS = (
    rb"(?:[\t\n\f\r /]++"
    rb"|[^\t\n\f\r />=][^\t\n\f\r />=]*+(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+" + _VALUE + rb")?+"
    rb")*+"
)

_PROLOG = re.compile(
    rb"(?:\xef\xbb\xbf)?+"
    rb"(?:[\t\n\f\r ]++|<!--(?>-?>|.*?--!?>)|<(?:!(?!--)|\?)[^>]*+>)*+",
    re.S,
)
_HTML_TAG = re.compile(rb"<(?i:html)" + _NAME_ENDS + _ATTRS + rb">")
_HTML_NAME_LENGTH = len(b"<html")

_RAW_TEXT = (b"script", b"style", b"textarea", b"title", b"xmp", b"iframe", b"noembed",
             b"noframes", b"noscript")
_RAW_TEXT_NAME = rb"(?i:" + b"|".join(_RAW_TEXT) + rb")" + _NAME_ENDS


def _scanner(stop_at_head_end: bool) -> re.Pattern[bytes]:
    """One C-level pass that skips everything up to the first real ``<body>`` (or ``</head>``).

    It is a single ``match`` rather than a Python loop over tokens so a page whose body tag
    is missing still costs one regex run, not one interpreter round trip per tag.
    """
    body = rb"(?i:body)" + _NAME_ENDS
    head_end = rb"/(?i:head)" + _NAME_ENDS
    stops = body + (rb"|" + head_end if stop_at_head_end else b"")
    raw_text = b"|".join(
        rb"(?i:" + name + rb")" + _NAME_ENDS + _ATTRS
        + rb">(?>.*?</(?i:" + name + rb")" + _NAME_ENDS + rb"|.*+)"
        for name in _RAW_TEXT
    )
    skip = (
        rb"[^<]++"
        rb"|<(?:"
        rb"!--(?>-?>|.*?--!?>|.*+)"  # a comment; an unclosed one runs to the end
        rb"|[!?][^>]*+>?"  # doctype, <![CDATA[ and other bogus comments
        rb"|/(?![A-Za-z])[^>]*+>?"  # </> and </ ...>
        rb"|(?=" + _RAW_TEXT_NAME + rb")(?:" + raw_text + rb")"
        rb"|(?!" + stops + rb")/?[A-Za-z][^\t\n\f\r />]*+" + _ATTRS + rb">"
        rb"|(?!" + stops + rb")"  # a '<' that starts no tag is text
        rb")"
    )
    target = rb"(?P<body><" + body + _ATTRS + rb">)"
    if stop_at_head_end:
        target += rb"|(?P<head_end><" + head_end + _ATTRS + rb">)"
    return re.compile(rb"(?:" + skip + rb")*+(?:" + target + rb")?", re.S)


_TO_HEAD_END_OR_BODY = _scanner(stop_at_head_end=True)
_TO_BODY = _scanner(stop_at_head_end=False)
# Cheap existence checks: the tokenizer runs only when a target is mentioned at all.
_MENTION = re.compile(rb"<(?:(?i:body)|/(?i:head))" + _NAME_ENDS)
_BODY_MENTION = re.compile(rb"<(?i:body)" + _NAME_ENDS)

_END_TAGS = {name: re.compile(rb"</(?i:" + name + rb")" + _NAME_ENDS)
             for name in (b"body", b"html")}
_TAIL = 4096  # where the last </body> and </html> are looked for first
_TAG_NAME_ENDS = frozenset(b"\t\n\f\r />")
_DELIMITER = re.compile(rb"--!?>|<!--|</?" + _RAW_TEXT_NAME)

_Edit = tuple[int, int, bytes]  # replace page[start:end] with the bytes


# --- composition ---------------------------------------------------------------------------

def compose(page: bytes, chrome: Chrome, encoding: str = "utf-8") -> bytes:
    """Return ``page`` with ``chrome`` spliced in; see the module docstring for where.

    Bytes outside the insertion points and the ``<html>`` tag's theme/class attributes are
    returned exactly as the backend sent them. Pages in an encoding that is not
    ASCII-compatible, or unknown to Python, are returned unchanged.
    """
    codec = _byte_codec(encoding)
    if codec is None:
        return page
    prolog = _PROLOG.match(page)
    content_start = prolog.end() if prolog else 0
    edits: list[_Edit] = []
    html_tag = _HTML_TAG.match(page, content_start)
    if html_tag is not None:
        edits.extend(_html_tag_edits(page, html_tag, chrome))
        content_start = html_tag.end()

    head_end, body = _find_head_end_and_body(page, content_start)
    head_at = head_end[0] if head_end else body[0] if body else content_start
    body_start_at = body[1] if body else head_end[1] if head_end else content_start
    lowered = _Lowered(page)
    body_end_at = _last_end_tag(page, b"body", body_start_at, lowered)
    if body_end_at is None:
        body_end_at = _last_end_tag(page, b"html", body_start_at, lowered)
    if body_end_at is None:
        body_end_at = len(page)

    for at, fragment in ((head_at, chrome.head), (body_start_at, chrome.body_start),
                         (body_end_at, chrome.body_end)):
        if fragment:
            edits.append((at, at, fragment.encode(codec, "xmlcharrefreplace")))
    return _splice(page, edits)


@lru_cache(maxsize=64)
def _byte_codec(encoding: str) -> str | None:
    """The codec to encode fragments with, or None when byte-level editing is unsafe.

    A codec qualifies when it writes printable ASCII and HTML whitespace as the same single
    bytes; stateful codecs pass that probe (they start in ASCII mode) but can later use
    ASCII bytes for other characters, so they are refused by name.
    """
    try:
        name = codecs.lookup(encoding).name
    except (LookupError, TypeError):
        return None
    if name == "utf-8-sig":  # the signature belongs at the start of a file, not in fragments
        name = "utf-8"
    if name.startswith(("iso2022", "utf-7", "hz")):
        return None
    probe = "".join(map(chr, range(0x20, 0x7F))) + "\t\n\f\r"
    try:
        return name if probe.encode(name) == probe.encode("ascii") else None
    except UnicodeError:
        return None


def _find_head_end_and_body(
    page: bytes, start: int
) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    """Spans of the first real ``</head>`` before the body, and of the ``<body>`` start tag.

    The tokenizer only runs when a plain search finds the tag mentioned, and it stops at the
    first real one, so a normal page costs a pass over its head and nothing more.
    """
    if _MENTION.search(page, start) is None:
        return None, None
    found = _TO_HEAD_END_OR_BODY.match(page, start)
    head_end: tuple[int, int] | None = None
    if found is not None and found.group("head_end") is not None:
        head_end = found.span("head_end")
        found = None
        if _BODY_MENTION.search(page, head_end[1]) is not None:
            found = _TO_BODY.match(page, head_end[1])
    if found is None or found.group("body") is None:
        return head_end, None
    return head_end, found.span("body")


class _Lowered:
    """``page.lower()``, made at most once and only when a search has to go past the tail."""

    __slots__ = ("_page", "_value")

    def __init__(self, page: bytes) -> None:
        self._page = page
        self._value: bytes | None = None

    def get(self) -> bytes:
        if self._value is None:
            self._value = self._page.lower()
        return self._value


def _last_end_tag(page: bytes, name: bytes, floor: int, lowered: _Lowered) -> int | None:
    """Start of the last ``</name>`` at or after ``floor`` that is not hidden, or None.

    The end tag nearly always sits in the last few bytes, so the tail is searched first; only
    when it holds no usable candidate is the rest searched backwards in a lower-cased copy.
    """
    tail = max(floor, len(page) - _TAIL)
    for found in reversed(list(_END_TAGS[name].finditer(page, tail))):
        if not _hidden(page, found.end()):
            return found.start()
    needle = b"</" + name
    end = tail + len(needle) - 1  # candidates starting before the tail
    while tail > floor and (at := lowered.get().rfind(needle, floor, end)) != -1:
        after = at + len(needle)
        if after < len(page) and page[after] in _TAG_NAME_ENDS and not _hidden(page, after):
            return at
        end = after - 1
    return None


def _hidden(page: bytes, position: int) -> bool:
    """Whether ``position`` is inside a comment or raw text, judged by what comes next.

    The first comment or raw-text delimiter after it decides: a closing one (``-->``,
    ``</script``) means we are inside; an opening one or none means we are not.
    """
    delimiter = _DELIMITER.search(page, position)
    return delimiter is not None and delimiter.group().startswith((b"--", b"</"))


def _html_tag_edits(page: bytes, tag: re.Match[bytes], chrome: Chrome) -> list[_Edit]:
    """Edits inside the ``<html>`` start tag: set the theme attributes, add classes."""
    wanted = {b"data-theme": chrome.theme.encode("ascii"),
              b"data-color-theme": chrome.color_theme.encode("ascii")}
    classes = list(dict.fromkeys(t.encode("ascii")
                                 for t in _CLASS_TOKEN.findall(chrome.html_class)))
    name_end = tag.start() + _HTML_NAME_LENGTH
    seen: set[bytes] = set()
    edits: list[_Edit] = []
    for attribute in _ATTRIBUTE.finditer(page, name_end, tag.end() - 1):
        name = attribute.group("name").lower()
        if name in seen:  # browsers ignore every repetition of an attribute
            continue
        seen.add(name)
        if name in wanted:
            edits.append(_set_value(attribute, wanted[name]))
        elif name == b"class" and classes:
            edit = _add_classes(attribute, classes)
            if edit is not None:
                edits.append(edit)
    missing = [b' %s="%s"' % (name, value) for name, value in wanted.items() if name not in seen]
    if classes and b"class" not in seen:
        missing.append(b' class="%s"' % b" ".join(classes))
    if missing:
        edits.insert(0, (name_end, name_end, b"".join(missing)))
    return edits


def _set_value(attribute: re.Match[bytes], value: bytes) -> _Edit:
    """Replace an attribute's value, keeping its quote style (our values need no quoting)."""
    old = attribute.group("value")
    if old is None:
        at = attribute.end("name")
        return at, at, b'="' + value + b'"'
    start, end = attribute.span("value")
    quote = old[:1] if old[:1] in (b'"', b"'") else b""
    return start, end, quote + value + quote


def _add_classes(attribute: re.Match[bytes], classes: list[bytes]) -> _Edit | None:
    """Append the classes a ``class`` attribute lacks; None when it has them all."""
    old = attribute.group("value")
    if old is None:
        at = attribute.end("name")
        return at, at, b'="' + b" ".join(classes) + b'"'
    quoted = old[:1] in (b'"', b"'")
    inner = old[1:-1] if quoted else old
    present = set(inner.split())
    new = [token for token in classes if token not in present]
    if not new:
        return None
    separator = b" " if inner and inner[-1] not in b"\t\n\f\r " else b""
    value = inner + separator + b" ".join(new)
    if quoted:
        quote = old[:1]
    elif b'"' not in value:
        quote = b'"'
    elif b"'" not in value:
        quote = b"'"
    else:  # an unquoted value holding both quote characters: escape one kind
        quote, value = b'"', value.replace(b'"', b"&quot;")
    start, end = attribute.span("value")
    return start, end, quote + value + quote


def _splice(page: bytes, edits: list[_Edit]) -> bytes:
    """Apply non-overlapping edits (sorted by start; equal starts keep their order)."""
    if not edits:
        return page
    view = memoryview(page)
    parts: list[bytes | memoryview] = []
    cursor = 0
    for start, end, text in sorted(edits, key=lambda edit: edit[0]):
        parts.append(view[cursor:start])
        parts.append(text)
        cursor = end
    parts.append(view[cursor:])
    return b"".join(parts)
