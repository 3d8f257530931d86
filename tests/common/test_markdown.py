"""The kit's renderer for untrusted text (a model's reply): markdown yes, markup never."""

from hivematrix.common.markdown import render, render_untrusted


def test_raw_html_in_untrusted_text_is_shown_as_text() -> None:
    html = render_untrusted('Look: <img src="x" onerror="alert(1)"> and <script>x()</script>')
    assert "<img" not in html and "<script" not in html
    assert '&lt;img src="x" onerror="alert(1)"&gt;' in html
    assert "&lt;script&gt;x()&lt;/script&gt;" in html


def test_untrusted_markdown_still_formats_and_highlights() -> None:
    html = render_untrusted("**Done**\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
                            "```python\nx = 1\n```\n")
    assert "<strong>Done</strong>" in html
    assert "<table>" in html and "<td>1</td>" in html
    assert '<pre class="code"><code class="language-python">' in html
    assert 'class="code__number"' in html


def test_untrusted_links_are_limited_to_safe_schemes() -> None:
    html = render_untrusted("[a](javascript:alert(1)) [b](https://example.com)")
    assert "href=\"javascript" not in html  # markdown-it refuses the link: it stays text
    assert 'href="https://example.com"' in html and 'rel="noopener noreferrer"' in html


def test_articles_still_pass_raw_html_to_the_sanitiser() -> None:
    assert render("<mark>kept</mark> <img src=x onerror=alert(1)>") == \
        '<p><mark>kept</mark> <img src="x"></p>\n'
