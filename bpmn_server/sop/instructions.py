"""A step's instructions: ``bpmn:documentation`` turned into safe HTML, honouring ``textFormat``.

Plain text keeps its paragraphs and lists, Markdown renders as Markdown, HTML stays HTML; whatever the
format, the result passes through nh3 (ammonia) with a short allow-list, so no script, event handler,
``javascript:`` link, frame, form, style or SVG can reach the page.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

import markdown
import nh3
from lxml import etree

from ..parser.namespaces import q

ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "div", "dl", "dt", "em",
        "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre",
        "s", "small", "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr",
        "u", "ul",
    }
)
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "ol": {"start"},
    "abbr": {"title"},
}
# Tags removed together with their content (the rest are unwrapped and keep their text).
DROPPED_WITH_CONTENT = frozenset(
    {"script", "style", "iframe", "object", "embed", "svg", "math", "template", "noscript", "frame", "frameset"}
)
URL_SCHEMES = frozenset({"http", "https", "mailto", "tel"})

_LIST_ITEM = re.compile(r"^\s*(?:[-*+•‣◦]|(\d{1,3})[.)])\s+(.*)$")


@dataclass(frozen=True)
class Instructions:
    """Sanitized HTML of an element's documentation, with the source text (for diffs and search)."""

    html: str
    text: str
    text_format: str

    def __bool__(self) -> bool:
        return bool(self.text.strip())


def sanitize_html(fragment: str) -> str:
    """The fragment with everything outside the allow-list removed; safe to put in a page as is."""
    cleaned = nh3.clean(
        fragment,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return cleaned.strip()


def plain_text_html(text: str) -> str:
    """Plain text as HTML: blank lines separate paragraphs, ``-``/``*``/``1.`` lines become lists."""
    blocks: list[str] = []
    for raw_block in re.split(r"\n\s*\n", text.strip()):
        lines = [line.rstrip() for line in raw_block.splitlines() if line.strip()]
        blocks.extend(_plain_block(lines))
    return "\n".join(blocks)


def _plain_block(lines: list[str]) -> list[str]:
    """One block of plain text (no blank line inside) as paragraphs and lists."""
    blocks: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    ordered = False

    def flush_paragraph() -> None:
        if paragraph:
            blocks.append("<p>" + "<br>".join(html.escape(p.strip()) for p in paragraph) + "</p>")
            paragraph.clear()

    def flush_list() -> None:
        if items:
            tag = "ol" if ordered else "ul"
            blocks.append(f"<{tag}>" + "".join(f"<li>{item}</li>" for item in items) + f"</{tag}>")
            items.clear()

    for line in lines:
        match = _LIST_ITEM.match(line)
        if match:
            flush_paragraph()
            is_ordered = match.group(1) is not None
            if items and is_ordered != ordered:
                flush_list()
            ordered = is_ordered
            items.append(html.escape(match.group(2).strip()))
        elif items and line[:1].isspace():
            items[-1] += " " + html.escape(line.strip())  # continuation of a list item
        else:
            flush_list()
            paragraph.append(line)
    flush_paragraph()
    flush_list()
    return blocks


def markdown_html(text: str) -> str:
    """Markdown (with tables and fenced code) as HTML, not yet sanitized."""
    return markdown.markdown(text, extensions=["tables", "fenced_code", "sane_lists"], output_format="html")


def render_text(text: str, text_format: str | None) -> str:
    """Documentation text of the given ``textFormat`` as sanitized HTML."""
    fmt = (text_format or "text/plain").strip().lower()
    if "markdown" in fmt:
        rendered = markdown_html(text)
    elif "html" in fmt:
        rendered = text
    else:
        rendered = plain_text_html(text)
    return sanitize_html(rendered)


def documentation_of(element: etree._Element) -> Instructions:
    """The element's direct ``bpmn:documentation`` children, rendered and sanitized."""
    parts_html: list[str] = []
    parts_text: list[str] = []
    formats: list[str] = []
    for doc in element.findall(q("documentation")):
        text = _inner_text(doc)
        if not text.strip():
            continue
        fmt = doc.get("textFormat") or "text/plain"
        formats.append(fmt)
        parts_text.append(text.strip())
        parts_html.append(render_text(text, fmt))
    return Instructions(
        html="\n".join(part for part in parts_html if part),
        text="\n\n".join(parts_text),
        text_format=formats[0] if formats else "text/plain",
    )


def _inner_text(doc: etree._Element) -> str:
    """The documentation's text; markup written unescaped inside it (XHTML children) is kept as markup."""
    if len(doc) == 0:
        return doc.text or ""
    pieces = [doc.text or ""]
    for child in doc:
        pieces.append(etree.tostring(child, encoding="unicode", with_tail=True))
    text = "".join(pieces)
    # serialized children carry namespace declarations; they mean nothing in HTML
    return re.sub(r'\sxmlns(:\w+)?="[^"]*"', "", text)
