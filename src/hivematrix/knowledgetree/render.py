"""Articles as safe HTML: the kit's renderer (:mod:`hivematrix.common.markdown`)."""

from hivematrix.common.markdown import language, markdown_html, render, sanitise

__all__ = ["language", "markdown_html", "render", "sanitise"]
