"""The SOP handbook of a process version as one self-contained HTML page (inline CSS and SVG, no scripts).

``render_sop_html`` is the single entry point used by the web page, the REST API and the command line;
the page depends only on the document and the version's metadata, so the SOP of a deployed version
reads the same every time it is opened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from ..parser.document import BpmnDocument
from ..parser.namespaces import CAMUNDA, q
from .instructions import Instructions
from .steps import Chapter, Next, Step, all_steps, build_chapters
from .svg import Diagram, render_diagrams

STATE_LABELS = {
    "published": "Published",
    "draft": "Draft (not yet published)",
    "retired": "Retired (no longer in use)",
}


@dataclass
class Handbook:
    """Everything the template shows: the main process, every chapter, the diagrams and the metadata."""

    title: str
    process_id: str
    purpose: Instructions
    owner: str | None
    version: int | str | None
    state: str | None
    published_at: str | None
    chapters: list[Chapter]
    diagrams: list[Diagram]
    missing_layout: list[str]
    link_prefix: str | None

    @property
    def changes_link(self) -> str | None:
        """The comparison with the previous version, on the server (not in a file on disk)."""
        if self.link_prefix is None or not isinstance(self.version, int) or self.version < 2:
            return None
        return f"{self.link_prefix}/sop/{self.process_id}/diff/{self.version - 1}/{self.version}"

    @property
    def state_label(self) -> str | None:
        if self.state is None:
            return None
        return STATE_LABELS.get(self.state, self.state.capitalize())

    @property
    def main(self) -> Chapter | None:
        return self.chapters[0] if self.chapters else None


@lru_cache(maxsize=1)
def template_environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("bpmn_server.sop", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["next_html"] = next_html
    environment.filters["lowerfirst"] = lambda text: Markup(text[:1].lower()) + Markup(text[1:])
    environment.globals["called_link"] = called_link
    return environment


def next_html(item: Next) -> Markup:
    """One outgoing path in words, its step number a link: ``If amount > 500 → <a>step 7</a>``."""
    link = Markup('<a href="#step-{}">{}</a>').format(item.target_id, item.target_text)
    if item.kind == "if":
        return Markup("If {} → {}").format(item.condition, link)
    if item.kind == "otherwise":
        return Markup("Otherwise → {}").format(link)
    if item.kind == "parallel":
        return Markup("At the same time → {}").format(link)
    if item.kind == "event":
        return Markup("If {} happens first → {}").format(item.condition, link)
    if item.kind == "link":
        return Markup("Go to {}").format(link)
    return Markup("Then {}").format(link)


def documented_owner(document: BpmnDocument, process_id: str) -> str | None:
    """The owner the modeler wrote into the process (``camunda:property name="owner"``), if any."""
    process = next((p for p in document.process_elements if p.get("id") == process_id), None)
    if process is None:
        return None
    extensions = process.find(q("extensionElements"))
    if extensions is None:
        return None
    for prop in extensions.iter(f"{{{CAMUNDA}}}property"):
        if (prop.get("name") or "").strip().lower() in ("owner", "process owner", "processowner"):
            value = " ".join((prop.get("value") or "").split())
            if value:
                return value
    return None


def build_handbook(
    document: BpmnDocument,
    process_id: str | None = None,
    *,
    version: int | str | None = None,
    owner: str | None = None,
    state: str | None = None,
    published_at: datetime | date | str | None = None,
    link_prefix: str | None = "",
) -> Handbook:
    """The handbook's content: ``process_id`` first, then every other process of the document that
    has steps or documentation (the other pools of a collaboration), one chapter each."""
    chapters = build_chapters(document)
    if process_id is not None:
        # a process without steps or documentation is left out of the full list: build it on its own
        # (NotFound for an unknown process)
        chosen = [c for c in chapters if c.process_id == process_id] or build_chapters(document, process_id)
        chapters = chosen + [c for c in chapters if c.process_id != process_id]
    main = chapters[0] if chapters else None
    links: dict[str, str] = {}
    orders: dict[str, list[str]] = {}
    for chapter in chapters:
        orders[chapter.process_id] = [step.id for step in chapter.steps]
        for step in chapter.walk():
            links[step.id] = f"#{step.anchor}"
    for participant in document.bpmn_elements("participant"):
        ref = participant.get("processRef")
        if ref and ref in orders and participant.get("id"):
            links[participant.get("id")] = f"#process-{ref}"
    diagrams = render_diagrams(document, links, orders=orders)
    drawn = {element_id for diagram in diagrams for element_id in diagram.element_ids}
    missing = [c.name for c in chapters if c.steps and not any(s.id in drawn for s in c.walk())]
    if isinstance(published_at, datetime):
        published_text = published_at.strftime("%Y-%m-%d %H:%M UTC")
    elif isinstance(published_at, date):
        published_text = published_at.isoformat()
    else:
        published_text = published_at
    return Handbook(
        title=main.name if main else (document.name or "Process"),
        process_id=main.process_id if main else (process_id or ""),
        purpose=main.documentation if main else Instructions("", "", "text/plain"),
        owner=owner or (documented_owner(document, main.process_id) if main else None),
        version=version,
        state=state,
        published_at=published_text,
        chapters=chapters,
        diagrams=diagrams,
        missing_layout=missing,
        link_prefix=link_prefix,
    )


def render_sop_html(
    document: BpmnDocument,
    process_id: str | None = None,
    *,
    version: int | str | None = None,
    owner: str | None = None,
    state: str | None = None,
    published_at: datetime | date | str | None = None,
    link_prefix: str | None = "",
) -> str:
    """The SOP page of ``process_id`` (or of every process, executable ones first) as one HTML string.

    ``link_prefix`` is where other processes' SOPs are served (``{link_prefix}/sop/<key>``), used for
    call activities whose process is not in this document; None leaves them unlinked (a file on disk).
    """
    handbook = build_handbook(
        document, process_id, version=version, owner=owner, state=state, published_at=published_at,
        link_prefix=link_prefix,
    )
    in_document = {chapter.process_id for chapter in handbook.chapters}
    template = template_environment().get_template("sop.html")
    return template.render(
        book=handbook,
        in_document=in_document,
        step_count=sum(1 for _ in all_steps(step for chapter in handbook.chapters for step in chapter.steps)),
    )


def called_link(step: Step, in_document: set[str], link_prefix: str | None) -> str | None:
    """Where a call activity's called process is described: its chapter here, or its own SOP page."""
    if not step.called_element:
        return None
    if step.called_element in in_document:
        return f"#process-{step.called_element}"
    if link_prefix is None:
        return None
    return f"{link_prefix}/sop/{step.called_element}"
