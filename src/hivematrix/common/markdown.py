"""Markdown and HTML as safe HTML: markdown rendered by markdown-it-py, then everything
(markdown's output and HTML content alike) cleaned by nh3 against an allow-list.

Used for KnowledgeTree's articles and Brainhair's chat messages. The sanitiser is the only
thing between an author and every reader's browser, so it decides, not the renderer: in an
article, raw HTML inside markdown is passed on to it like any other markup. Untrusted text
(a model's reply) goes through :func:`render_untrusted`, where raw HTML is not markup at all:
``<img onerror=...>`` shows as the text it is.
Links keep only http(s), mailto and tel URLs (or relative ones) and always get
``rel="noopener noreferrer"``; there are no ``style`` or event attributes, no scripts, frames,
forms or SVG. A fenced code block becomes ``<pre class="code"><code class="language-NAME">``
(NAME: the Pygments lexer the fence's language resolves to), and Pygments' keywords, strings,
numbers, comments and names in it become ``<span class="code__...">`` with the design
system's highlight classes; an unknown language stays plain.
"""

from __future__ import annotations

import html
import re
from functools import lru_cache
from typing import Any

import nh3
from markdown_it import MarkdownIt
from pygments.lexers import get_lexer_by_name
from pygments.token import Token
from pygments.util import ClassNotFound

TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "details", "div",
    "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i",
    "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "span",
    "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr",
    "u", "ul",
})
ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "ol": {"start"},
    "abbr": {"title"},
    "code": {"class"},
    "pre": {"class"},
    "span": {"class"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto", "tel"})
LINK_REL = "noopener noreferrer"
#: The only classes kept: the design system's code block and a code element's language.
_CODE_CLASS = re.compile(r"language-[a-z0-9][a-z0-9+#._-]{0,40}")


#: Pygments token kinds shown in colour, and the design system's class for each (the first
#: kind a token belongs to wins).
HIGHLIGHTS = ((Token.Comment, "code__comment"), (Token.Keyword, "code__keyword"),
              (Token.Literal.String, "code__string"), (Token.Literal.Number, "code__number"),
              (Token.Name.Function, "code__name"), (Token.Name.Class, "code__name"),
              (Token.Name.Builtin, "code__name"))
_HIGHLIGHT_CLASSES = frozenset(name for _, name in HIGHLIGHTS)


def _keep_class(element: str, attribute: str, value: str) -> str | None:
    if attribute != "class":
        return value
    if element == "pre":
        return "code" if value.split() == ["code"] else None
    if element == "span":
        return value if value in _HIGHLIGHT_CLASSES else None
    kept = [name for name in value.split() if _CODE_CLASS.fullmatch(name)]
    return " ".join(kept) or None


def sanitise(markup: str) -> str:
    """Untrusted HTML reduced to the allow-list (anything else is dropped or escaped)."""
    cleaned: str = nh3.clean(
        markup, tags=set(TAGS), attributes={tag: set(names) for tag, names in ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES), link_rel=LINK_REL, strip_comments=True,
        attribute_filter=_keep_class)
    return cleaned


@lru_cache(maxsize=256)
def language(info: str) -> str | None:
    """The Pygments name for a fence's language (``py`` → ``python``), None if unknown."""
    name = info.strip().split(maxsplit=1)[0].lower() if info.strip() else ""
    if not name:
        return None
    try:
        lexer = get_lexer_by_name(name)
    except ClassNotFound:
        return None
    aliases = getattr(lexer, "aliases", None) or [name]
    chosen = str(aliases[0]).lower()
    return chosen if _CODE_CLASS.fullmatch(f"language-{chosen}") else None


def highlighted(code: str, name: str | None) -> str:
    """``code`` escaped, its tokens wrapped in highlight spans when ``name`` is a language."""
    if name is None:
        return html.escape(code)
    runs: list[tuple[str | None, str]] = []  # neighbouring tokens of one kind: one span
    for kind, text in get_lexer_by_name(name, stripnl=False, ensurenl=False).get_tokens(code):
        css = next((css for family, css in HIGHLIGHTS if kind in family), None)
        if runs and runs[-1][0] == css:
            runs[-1] = (css, runs[-1][1] + text)
        else:
            runs.append((css, text))
    return "".join(f'<span class="{css}">{html.escape(text)}</span>' if css
                   else html.escape(text) for css, text in runs)


def _code_block(code: str, info: str) -> str:
    found = language(info)
    attribute = f' class="language-{found}"' if found else ""
    return f'<pre class="code"><code{attribute}>{highlighted(code, found)}</code></pre>\n'


def _fence(renderer: Any, tokens: Any, index: int, options: Any, env: Any) -> str:
    token = tokens[index]
    return _code_block(token.content, token.info or "")


def _indented(renderer: Any, tokens: Any, index: int, options: Any, env: Any) -> str:
    return _code_block(tokens[index].content, "")


@lru_cache(maxsize=2)
def _markdown(raw_html: bool = True) -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": raw_html}).enable(["table", "strikethrough"])
    parser.add_render_rule("fence", _fence)
    parser.add_render_rule("code_block", _indented)
    return parser


def markdown_html(text: str, *, raw_html: bool = True) -> str:
    """Markdown as (not yet sanitised) HTML; ``raw_html=False`` escapes HTML in the text."""
    rendered: str = _markdown(raw_html).render(text or "")
    return rendered


def render_untrusted(text: str) -> str:
    """Markdown from someone who must not write markup (a model): HTML in it stays text."""
    return sanitise(markdown_html(text, raw_html=False))


def render(content: str, content_format: str = "markdown") -> str:
    """An article's content as HTML safe to place in a page."""
    if content_format == "html":
        return sanitise(content or "")
    return sanitise(markdown_html(content))
