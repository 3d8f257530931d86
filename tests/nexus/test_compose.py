"""Composing backend pages with the Nexus chrome: fragments land in four exact places, and
every byte the chrome does not own comes back as the backend sent it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hivematrix.nexus.compose import COLOR_THEMES, THEMES, Chrome, compose, is_composable

HEAD = "<!--nexus:head-->"
START = "<!--nexus:body-start-->"
END = "<!--nexus:body-end-->"
H, S, E = (marker.encode() for marker in (HEAD, START, END))
CHROME = Chrome(theme="dark", color_theme="bee", head=HEAD, body_start=START, body_end=END)
THEMED = b'<html data-theme="dark" data-color-theme="bee"'


def strip(page: bytes) -> bytes:
    return page.replace(H, b"").replace(S, b"").replace(E, b"")


class _FirstTag(HTMLParser):
    """The standard library's parser, as an independent judge of what a tag's attributes are."""

    def __init__(self) -> None:
        super().__init__()
        self.attrs: list[tuple[str, str | None]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.attrs is None:
            self.attrs = attrs

    handle_startendtag = handle_starttag


def attributes(tag: bytes) -> dict[str, str | None]:
    parser = _FirstTag()
    parser.feed(tag.decode())
    assert parser.attrs is not None
    return dict(parser.attrs)


# --- the examples ----------------------------------------------------------------------------

def test_a_plain_page_gets_all_four_parts() -> None:
    page = (b"<!DOCTYPE html>\n<html lang=\"en\">\n<head><title>T</title></head>\n"
            b"<body class=\"app\">\n<p>Hi</p>\n</body>\n</html>\n")
    assert compose(page, CHROME) == (
        b'<!DOCTYPE html>\n<html data-theme="dark" data-color-theme="bee" lang="en">\n'
        b"<head><title>T</title>" + H + b"</head>\n"
        b'<body class="app">' + S + b"\n<p>Hi</p>\n" + E + b"</body>\n</html>\n")


def test_doctype_comments_processing_instruction_and_bom_before_html() -> None:
    prolog = (b"\xef\xbb\xbf<?xml version=\"1.0\"?>\n<!-- generated -->\n"
              b"<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0//EN\">\n<!---->  ")
    page = prolog + b"<html><head></head><body></body></html>"
    assert compose(page, CHROME) == (
        prolog + THEMED + b"><head>" + H + b"</head><body>" + S + E + b"</body></html>")


def test_uppercase_and_mixed_case_tags() -> None:
    page = b"<HTML><HEAD><TITLE>x</TITLE></HEAD><Body>x</bODY></Html>"
    assert compose(page, CHROME) == (
        b'<HTML data-theme="dark" data-color-theme="bee"><HEAD><TITLE>x</TITLE>' + H
        + b"</HEAD><Body>" + S + b"x" + E + b"</bODY></Html>")


def test_attribute_values_may_contain_angle_brackets() -> None:
    page = (b"<html data-x=\"a>b\" data-y='<c>'><head></head>"
            b"<body onload=\"if (a > b) go('<body>')\" data-z='>'>x</body></html>")
    out = compose(page, CHROME)
    assert out == (THEMED + b" data-x=\"a>b\" data-y='<c>'><head>" + H + b"</head>"
                   b"<body onload=\"if (a > b) go('<body>')\" data-z='>'>" + S + b"x" + E
                   + b"</body></html>")


@pytest.mark.parametrize(("tag", "expected"), [
    (b'<html data-theme="light">', b'<html data-color-theme="bee" data-theme="dark">'),
    (b"<html data-theme='light'>", b"<html data-color-theme=\"bee\" data-theme='dark'>"),
    (b"<html data-theme=light>", b'<html data-color-theme="bee" data-theme=dark>'),
    (b"<html data-theme>", b'<html data-color-theme="bee" data-theme="dark">'),
    (b'<html DATA-THEME = "light" lang=en>',
     b'<html data-color-theme="bee" DATA-THEME = "dark" lang=en>'),
    (b"<html data-color-theme=blue data-theme='x'>",
     b"<html data-color-theme=bee data-theme='dark'>"),
    (b'<html data-theme="light" data-theme="other">',
     b'<html data-color-theme="bee" data-theme="dark" data-theme="other">'),
])
def test_existing_theme_attributes_are_replaced_in_place(tag: bytes, expected: bytes) -> None:
    assert compose(tag + b"<body></body>", CHROME) == expected + H + b"<body>" + S + E + b"</body>"


@pytest.mark.parametrize(("tag", "expected"), [
    (b'<html class="a b">', b'<html class="a b hm sidebar">'),
    (b"<html class='a'>", b"<html class='a hm sidebar'>"),
    (b"<html class=a>", b'<html class="a hm sidebar">'),
    (b'<html class="">', b'<html class="hm sidebar">'),
    (b'<html class="a ">', b'<html class="a hm sidebar">'),
    (b"<html class>", b'<html class="hm sidebar">'),
    (b'<html class="sidebar x">', b'<html class="sidebar x hm">'),
    (b'<html class="hm sidebar">', b'<html class="hm sidebar">'),
    (b"<html class=a\"b>", b"<html class='a\"b hm sidebar'>"),
    (b"<html>", b'<html class="hm sidebar">'),
    (b'<html CLASS="a" class="b">', b'<html CLASS="a hm sidebar" class="b">'),
])
def test_chrome_classes_join_the_class_attribute(tag: bytes, expected: bytes) -> None:
    chrome = replace(CHROME, html_class=" hm  sidebar hm ")
    out = compose(tag, chrome)
    themed = expected[:5] + b' data-theme="dark" data-color-theme="bee"' + expected[5:]
    assert out == themed + H + S + E


def test_no_class_attribute_is_added_without_chrome_classes() -> None:
    assert compose(b"<html>", CHROME) == THEMED + b">" + H + S + E


def test_self_closing_slash_and_odd_whitespace_in_the_html_tag() -> None:
    assert compose(b"<html\n\tlang=en/>", CHROME) == (
        b'<html data-theme="dark" data-color-theme="bee"\n\tlang=en/>' + H + S + E)
    assert compose(b"<html />", CHROME) == THEMED + b" />" + H + S + E


def test_no_end_of_head_puts_the_head_fragment_before_body() -> None:
    page = b"<html><head><title>x</title><body>y</body></html>"
    assert compose(page, CHROME) == (
        THEMED + b"><head><title>x</title>" + H + b"<body>" + S + b"y" + E + b"</body></html>")


def test_no_head_and_no_body_tags_fall_back_to_after_html() -> None:
    page = b"<!doctype html><html><p>x</p></html>\n"
    assert compose(page, CHROME) == (
        b"<!doctype html>" + THEMED + b">" + H + S + b"<p>x</p>" + E + b"</html>\n")


def test_no_body_tag_starts_the_body_after_the_end_of_head() -> None:
    page = b"<html><head><title>x</title></head>\n<p>y</p></body></html>"
    assert compose(page, CHROME) == (
        THEMED + b"><head><title>x</title>" + H + b"</head>" + S + b"\n<p>y</p>" + E
        + b"</body></html>")
    no_end_tags = b"<html><head></head><p>y</p>"
    assert compose(no_end_tags, CHROME) == (
        THEMED + b"><head>" + H + b"</head>" + S + b"<p>y</p>" + E)


def test_a_fragment_without_html_tag_gets_fragments_but_no_theme() -> None:
    assert compose(b"<p>x</p>", CHROME) == H + S + b"<p>x</p>" + E
    assert compose(b"<!doctype html>\n<p>x</p>", CHROME) == (
        b"<!doctype html>\n" + H + S + b"<p>x</p>" + E)
    page = b"<!doctype html><head><title>t</title></head><body>x</body>"
    assert compose(page, CHROME) == (
        b"<!doctype html><head><title>t</title>" + H + b"</head><body>" + S + b"x" + E + b"</body>")


def test_only_an_html_tag_right_after_the_prolog_counts() -> None:
    page = b"<p>intro</p><html data-theme=light><body>x</body>"
    assert compose(page, CHROME) == (
        b"<p>intro</p><html data-theme=light>" + H + b"<body>" + S + b"x" + E + b"</body>")


def test_an_unterminated_html_tag_is_not_an_html_tag() -> None:
    assert compose(b'<html lang="en', CHROME) == H + S + b'<html lang="en' + E


def test_empty_page() -> None:
    assert compose(b"", CHROME) == H + S + E


def test_empty_fragments_insert_nothing() -> None:
    chrome = Chrome(theme="light", color_theme="blue", head="", body_start="", body_end="")
    page = b"<html><body>x</body></html>"
    assert compose(page, chrome) == (
        b'<html data-theme="light" data-color-theme="blue"><body>x</body></html>')


def test_end_of_body_inside_a_head_script_is_ignored() -> None:
    page = (b"<html><head><script>document.write('</body></head><body>');</script>"
            b"<SCRIPT type=module>let s = \"</HEAD>\"</SCRIPT></head>"
            b"<body>x</body></html>")
    head = page[5:page.rindex(b"</head><body>")]
    assert compose(page, CHROME) == (
        THEMED + head + H + b"</head><body>" + S + b"x" + E + b"</body></html>")


def test_a_commented_body_tag_before_the_real_one_is_skipped() -> None:
    page = b"<html><head><!-- <body> </head> --></head><!-- <body> --><body id=real>x</body>"
    assert compose(page, CHROME) == (
        THEMED + b"><head><!-- <body> </head> -->" + H + b"</head><!-- <body> --><body id=real>"
        + S + b"x" + E + b"</body>")


@pytest.mark.parametrize("decoy", [
    b"<title><body></title>", b"<style>a{content:'<body>'}</style>", b"<textarea><body></textarea>",
    b"<noscript><body></noscript>", b"<meta content=\"<body>\">", b"<bodyx>", b"<body-part>",
    b"<![CDATA[ <body> ]]>", b"<? <body> ?>", b"<!-- unclosed comment -- <body> -->",
    b"<script type=\"x\"> <!-- <body> </script>", b"1 < 2 <body_x>",
])
def test_decoys_before_the_real_body(decoy: bytes) -> None:
    page = b"<html><head>" + decoy + b"</head><body class=real>x</body></html>"
    assert compose(page, CHROME) == (
        THEMED + b"><head>" + decoy + H + b"</head><body class=real>" + S + b"x" + E
        + b"</body></html>")


def test_the_last_end_of_body_wins() -> None:
    page = (b"<html><body><script>document.write(\"</body>\")</script>x</body>\n"
            b"<!-- </body> -->\n<script>var late = '</BODY>';</script></html>")
    out = compose(page, CHROME)
    assert out.index(E) + len(E) == out.index(b"</body>\n<!--")
    assert strip(out) == THEMED + page[5:]


def test_the_last_end_of_body_wins_over_one_inside_an_attribute() -> None:
    """Mentions in attribute values are invisible to the tail check; being last is what counts."""
    page = b'<html><body><a title="</body>">x</a><i data-x=\'</BODY>\'></i></body></html>'
    out = compose(page, CHROME)
    assert out.endswith(b"</i>" + E + b"</body></html>")


def test_a_body_script_mentioning_the_end_of_body_when_the_real_one_is_missing() -> None:
    page = b"<html><body><script>document.write('</body>')</script><p>x</p></html>"
    out = compose(page, CHROME)
    assert out.endswith(b"<p>x</p>" + E + b"</html>")


def test_missing_end_tags_put_the_body_end_at_the_end() -> None:
    page = b"<html><body><p>x"
    assert compose(page, CHROME) == THEMED + b">" + H + b"<body>" + S + b"<p>x" + E


def test_an_unclosed_comment_in_head_hides_the_rest() -> None:
    page = b"<html><head><!-- <body> </head>"
    assert compose(page, CHROME) == THEMED + b">" + H + S + b"<head><!-- <body> </head>" + E


def test_a_100_kb_page() -> None:
    row = (b'<tr class="row"><td><a href="/t/1">#1 &amp; \xe2\x9c\x93</a></td>'
           b'<td data-v="3 > 2">Open</td></tr>\n')
    head = (b"<!DOCTYPE html>\n<html lang=\"en\" class=\"no-js\">\n<head>\n<meta charset=\"utf-8\">"
            b"<script>var c = {\"end\": \"</body>\"};</script>\n</head>\n<!-- <body> -->\n<body>\n")
    page = head + row * (100_000 // len(row)) + b"</body>\n</html>\n"
    assert len(page) > 100_000
    out = compose(page, replace(CHROME, html_class="hm"))
    assert out.startswith(b'<!DOCTYPE html>\n<html data-theme="dark" data-color-theme="bee" '
                          b'lang="en" class="no-js hm">')
    assert out.endswith(E + b"</body>\n</html>\n")
    assert out.count(H) == out.count(S) == out.count(E) == 1
    assert strip(out).replace(b' data-theme="dark" data-color-theme="bee"', b"", 1).replace(
        b"no-js hm", b"no-js", 1) == page


def test_the_end_of_body_far_from_the_end_of_the_page() -> None:
    """Past the tail, the search goes on backwards through the whole page, in any case."""
    trailer = b"<!-- " + b"padding " * 1000 + b" -->\n"
    page = b"<html><body>x</Body>" + trailer + b"</html>"
    assert compose(page, CHROME) == (
        THEMED + b">" + H + b"<body>" + S + b"x" + E + b"</Body>" + trailer + b"</html>")
    hidden = b"<html><body>x<!-- </body> " + b"pad " * 2000 + b"--></html>"
    assert compose(hidden, CHROME).endswith(b"-->" + E + b"</html>")


# --- encodings -------------------------------------------------------------------------------

def test_characters_the_encoding_lacks_become_character_references() -> None:
    chrome = replace(CHROME, head="<title>Caf\u00e9 \u2713</title>")
    page = b"<html><head></head></html>"
    assert b"<title>Caf\xe9 &#10003;</title>" in compose(page, chrome, "latin-1")
    assert b"<title>Caf&#233; &#10003;</title>" in compose(page, chrome, "ascii")
    assert "<title>Café ✓</title>".encode() in compose(page, chrome, "UTF-8")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32", "utf-7", "iso-2022-jp",
                                      "hz", "cp500", "no-such-charset", ""])
def test_pages_in_unsafe_or_unknown_encodings_come_back_unchanged(encoding: str) -> None:
    try:
        page = "<html><body>x</body></html>".encode(encoding)
    except LookupError:
        page = b"<html><body>x</body></html>"
    assert compose(page, CHROME, encoding) is page


@pytest.mark.parametrize("encoding", ["shift_jis", "euc-jp", "gbk", "big5", "windows-1252",
                                      "utf-8-sig"])
def test_ascii_compatible_encodings_are_composed(encoding: str) -> None:
    text = "<html><body>\u65e5\u672c</body></html>"
    page = text.encode(encoding, "xmlcharrefreplace")
    out = compose(page, replace(CHROME, body_start="<b>\u65e5</b>"), encoding)
    bom = b"\xef\xbb\xbf" if encoding == "utf-8-sig" else b""
    fragment = "<b>\u65e5</b>".encode(encoding.replace("-sig", ""), "xmlcharrefreplace")
    assert out == bom + THEMED + b">" + H + b"<body>" + fragment + page[len(bom) + 12:-14] + E + (
        b"</body></html>")


# --- content types and validation -----------------------------------------------------------

@pytest.mark.parametrize(("content_type", "expected"), [
    ("text/html", True), ("text/html; charset=utf-8", True), ("TEXT/HTML;charset=ISO-8859-1", True),
    ("  text/html  ", True), ("application/xhtml+xml", False), ("text/plain", False),
    ("text/htmlx", False), ("application/json", False), ("", False), (None, False),
])
def test_is_composable(content_type: str | None, expected: bool) -> None:
    assert is_composable(content_type) is expected


@pytest.mark.parametrize("changes", [
    {"theme": "sepia"}, {"theme": "Dark"}, {"color_theme": "pink"}, {"color_theme": ""},
    {"html_class": 'x" onload="alert(1)'}, {"html_class": "a>b"}, {"html_class": "caf\u00e9"},
])
def test_chrome_refuses_values_that_would_break_the_html_tag(changes: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        replace(CHROME, **changes)


def test_every_theme_and_color_theme_is_accepted() -> None:
    for theme in THEMES:
        for color in COLOR_THEMES:
            Chrome(theme=theme, color_theme=color, head="", body_start="", body_end="",
                   html_class="a-b c_d E9")


# --- properties ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Attribute:
    name: str
    equals: str  # "" for an attribute without value
    quote: str
    value: str

    def raw(self, value: str | None = None, quote: str | None = None) -> str:
        """The attribute as written, or with another value (and quote)."""
        if value is None:
            if not self.equals:
                return self.name
            return self.name + self.equals + self.quote + self.value + self.quote
        quote = self.quote if quote is None else quote
        return self.name + (self.equals or "=") + quote + value + quote


SEPARATORS = st.sampled_from([" ", "  ", "\n", "\t", " \n "])
NAMES = ["lang", "dir", "data-theme", "DATA-THEME", "data-color-theme", "class", "Class",
         "data-x", "id", "style", "xmlns", "data-a"]


@st.composite
def attribute_lists(draw: st.DrawFn) -> list[Attribute]:
    names = draw(st.lists(st.sampled_from(NAMES), max_size=6,
                          unique_by=lambda name: name.lower()))
    out = []
    for name in names:
        style = draw(st.sampled_from(["double", "single", "bare", "none"]))
        equals = draw(st.sampled_from(["=", " = ", "= ", " ="])) if style != "none" else ""
        if style == "double":
            value = draw(st.text(st.sampled_from("ab x>y</body>'=é✓"), max_size=8))
            out.append(Attribute(name, equals, '"', value))
        elif style == "single":
            value = draw(st.text(st.sampled_from('ab x>y<"=/'), max_size=8))
            out.append(Attribute(name, equals, "'", value))
        elif style == "bare":
            value = draw(st.text(st.sampled_from("abc-_./:9"), min_size=1, max_size=6))
            out.append(Attribute(name, equals, "", value))
        else:
            out.append(Attribute(name, "", "", ""))
    return out


HEAD_ITEMS = [
    "<title>Page <body> </head></title>", "<meta charset=\"utf-8\">",
    "<link rel=stylesheet href=/a.css>",
    "<script>var a = \"</body>\", b = '<body>'; if (a < b && b > a) {}</script>",
    "<SCRIPT type=\"module\">document.write('</head>')</SCRIPT>", "<!-- <body> </head> -->",
    "<meta content=\"<body> </head>\">", "<style>body > p { content: \"</head>\" }</style>",
    "<noscript><link href=x></noscript>", "<bodyx data-a=\"1\">", "<![CDATA[ <body> ]]>",
    "\n", "  ", "text a < b", "h\u00e9llo \u2713", "<?php echo '<body>' ?>",
]
BODY_ITEMS = [
    "<p class=\"x\">Hello &amp; bye</p>", "<script>document.write(\"</body></html>\")</script>",
    "<!-- </body> </html> -->", "<textarea></body></textarea>", "\n", "caf\u00e9 \u2713",
    "<div data-x=\"a>b\">y</div>", "<br/>", "<body-part>",
]
TRAILERS = ["", "\n", "<!-- </body> -->", "<script>var x = '</body>';</script>", "<!-- end -->\n"]


@dataclass(frozen=True)
class Document:
    """A page built from parts, so where each fragment belongs is known without parsing it."""

    prolog: str
    html: tuple[str, list[Attribute], tuple[str, ...], str] | None  # name, attrs, seps, tail
    head: str
    head_end: str | None
    between: str
    body: str | None
    content: str
    body_end: str | None
    trailer: str
    html_end: str | None
    after: str

    def html_tag(self) -> str:
        assert self.html is not None
        name, attrs, seps, tail = self.html
        return "<" + name + "".join(seps[i] + a.raw() for i, a in enumerate(attrs)) + tail

    def page(self) -> bytes:
        return self.assemble(self.html_tag() if self.html else "", "", "", "").encode()

    def assemble(self, tag: str, head: str, start: str, end: str) -> str:
        out = self.prolog + tag
        if self.head_end is not None:
            out += self.head + head + self.head_end
            if self.body is not None:
                out += self.between + self.body + start
            else:
                out += start + self.between
        elif self.body is not None:
            out += self.head + self.between + head + self.body + start
        else:
            out += head + start + self.head + self.between
        out += self.content
        if self.body_end is not None:
            return out + end + self.body_end + self.trailer + (self.html_end or "") + self.after
        if self.html_end is not None:
            return out + self.trailer + end + self.html_end + self.after
        return out + self.trailer + self.after + end

    def expected(self, chrome: Chrome) -> bytes:
        tag = self.composed_tag(chrome) if self.html else ""
        return self.assemble(tag, chrome.head, chrome.body_start, chrome.body_end).encode()

    def composed_tag(self, chrome: Chrome) -> str:
        """The policy, restated over the parts: values replaced, classes appended."""
        assert self.html is not None
        name, attrs, seps, tail = self.html
        wanted = {"data-theme": chrome.theme, "data-color-theme": chrome.color_theme}
        classes = list(dict.fromkeys(chrome.html_class.split()))
        present = {a.name.lower() for a in attrs}
        parts = []
        for sep, a in zip(seps, attrs, strict=True):
            key = a.name.lower()
            if key in wanted:
                parts.append(sep + a.raw(wanted[key], a.quote if a.equals else '"'))
            elif key == "class" and classes:
                new = [c for c in classes if c not in a.value.split()]
                joiner = " " if a.value and not a.value[-1].isspace() else ""
                value = a.value + joiner + " ".join(new)
                parts.append(sep + (a.raw(value, a.quote or '"') if new else a.raw()))
            else:
                parts.append(sep + a.raw())
        added = "".join(f' {n}="{v}"' for n, v in wanted.items() if n not in present)
        if classes and "class" not in present:
            added += ' class="' + " ".join(classes) + '"'
        return "<" + name + added + "".join(parts) + tail


@st.composite
def documents(draw: st.DrawFn) -> Document:
    prolog = "".join(draw(st.lists(st.sampled_from(
        ["\n", "  ", "<!DOCTYPE html>", "<!doctype html>\n", "<!-- c <html> -->", "<!---->",
         "<?xml version=\"1.0\"?>"]), max_size=3)))
    if draw(st.booleans()):
        prolog = "\ufeff" + prolog
    html = None
    if draw(st.integers(0, 5)):
        attrs = draw(attribute_lists())
        seps = tuple(draw(SEPARATORS) for _ in attrs)
        html = (draw(st.sampled_from(["html", "HTML", "Html"])), attrs, seps,
                draw(st.sampled_from([">", " >", "\n>", " />"])))
    head = draw(st.sampled_from(["", "<head>", "<HEAD class=\"a>b\">"]))
    head += "".join(draw(st.lists(st.sampled_from(HEAD_ITEMS), max_size=5)))
    if html is None:  # so the prolog visibly ends where the model says it does
        head = "<meta name=anchor>" + head
    body = draw(st.none() | st.sampled_from(
        ["<body>", "<BODY class=\"a>b\">", "<Body\nonload='go(\"<body>\")' data-a=1>", "<body/>"]))
    return Document(
        prolog=prolog, html=html, head=head,
        head_end=draw(st.none() | st.sampled_from(["</head>", "</HEAD>", "</head >"])),
        between=draw(st.sampled_from(["", "\n", "<!-- <body> -->\n"])),
        body=body,
        content="".join(draw(st.lists(st.sampled_from(BODY_ITEMS), max_size=5))),
        body_end=draw(st.none() | st.sampled_from(["</body>", "</BODY>", "</body\n>"])),
        trailer=draw(st.sampled_from(TRAILERS)),
        html_end=draw(st.none() | st.sampled_from(["</html>", "</HTML>"])),
        after=draw(st.sampled_from(["", "\n", "\n<!-- cached -->\n"])),
    )


chromes = st.builds(
    Chrome, theme=st.sampled_from(THEMES), color_theme=st.sampled_from(COLOR_THEMES),
    head=st.just(HEAD), body_start=st.just(START), body_end=st.just(END),
    html_class=st.sampled_from(["", "hm", "hm-app sidebar-collapsed", "a x"]))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(), chromes)
def test_generated_pages_change_only_where_the_chrome_goes(doc: Document, chrome: Chrome) -> None:
    page = doc.page()
    out = compose(page, chrome)
    assert out == doc.expected(chrome)
    # Undo the chrome: without the fragments, and with the original <html> tag put back,
    # the backend's page comes back byte for byte.
    restored = strip(out)
    if doc.html is not None:
        original, composed = doc.html_tag().encode(), doc.composed_tag(chrome).encode()
        assert restored.count(composed) >= 1
        restored = restored.replace(composed, original, 1)
        attrs = attributes(composed)
        assert attrs["data-theme"] == chrome.theme
        assert attrs["data-color-theme"] == chrome.color_theme
        before = attributes(original)
        for key, value in before.items():
            if key not in ("data-theme", "data-color-theme", "class"):
                assert attrs[key] == value
        if chrome.html_class or "class" in before:
            assert set((attrs["class"] or "").split()) == (
                set((before.get("class") or "").split()) | set(chrome.html_class.split()))
    assert restored == page


PIECES = st.sampled_from([
    "<html", "<HTML", "<body", "<BODY", "</body>", "</head>", "<head>", "</html>", "<!--", "-->",
    "<script>", "</script>", "<title>", ">", "\"", "'", "=", " ", "\n", "/", "class", "data-theme",
    "x", "\u00e9", "<!doctype html>", "<", "\ufeff",
])


@settings(max_examples=1000, deadline=None)
@given(st.lists(PIECES, max_size=40).map("".join), chromes)
def test_arbitrary_markup_soup_only_changes_the_html_tag(soup: str, chrome: Chrome) -> None:
    page = soup.encode()
    out = compose(page, chrome)
    for marker in (H, S, E):
        assert out.count(marker) == 1
    assert out.index(H) <= out.index(S) <= out.index(E)
    restored = strip(out)
    if restored != page:  # the only other change: attributes right after a leading "<html"
        shortest = min(len(page), len(restored))
        prefix = next(i for i in range(shortest + 1)
                      if i == shortest or restored[i] != page[i])
        assert page.lower().rfind(b"<html", 0, prefix) != -1
        assert b">" in page[prefix:]


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_break_it(page: bytes) -> None:
    out = compose(page, CHROME)
    assert out.count(S) == page.count(S) + 1
