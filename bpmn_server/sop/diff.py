"""What changed between the SOPs of two versions: added, removed and changed steps (matched by element id),
and a word-level diff of the purpose and of every step's instructions."""

from __future__ import annotations

import difflib
import html
from dataclasses import dataclass, field

from markupsafe import Markup

from ..parser.document import BpmnDocument
from .html import template_environment
from .steps import Chapter, Step, build_chapters


@dataclass
class FieldChange:
    """One aspect of a step that differs: its label, and the old and new text."""

    label: str
    old: str
    new: str

    @property
    def words(self) -> Markup:
        return word_diff(self.old, self.new)


@dataclass
class StepChange:
    """A step that was added, removed or changed between two versions."""

    kind: str  # "added", "removed", "changed"
    step_id: str
    name: str
    old_number: str | None = None
    new_number: str | None = None
    changes: list[FieldChange] = field(default_factory=list)


@dataclass
class SopDiff:
    key: str
    title: str
    old_version: int | str
    new_version: int | str
    purpose: FieldChange | None
    steps: list[StepChange]

    def of_kind(self, kind: str) -> list[StepChange]:
        return [change for change in self.steps if change.kind == kind]

    @property
    def unchanged(self) -> bool:
        return self.purpose is None and not self.steps


def word_diff(old: str, new: str) -> Markup:
    """The new text with removed words in ``<del>`` and added words in ``<ins>`` (everything escaped)."""
    old_words, new_words = old.split(), new.split()
    out: list[str] = []
    matcher = difflib.SequenceMatcher(a=old_words, b=new_words, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            out.append(html.escape(" ".join(old_words[a1:a2])))
            continue
        if a2 > a1:
            out.append("<del>" + html.escape(" ".join(old_words[a1:a2])) + "</del>")
        if b2 > b1:
            out.append("<ins>" + html.escape(" ".join(new_words[b1:b2])) + "</ins>")
    return Markup(" ".join(out))


def _next_text(step: Step, steps: dict[str, Step]) -> str:
    """Where work goes after the step, by step names (numbers shift between versions, names do not)."""
    parts = []
    for item in step.next:
        target = steps.get(item.target_id)
        name = f"“{target.name}”" if target else item.target_id
        condition = f"if {item.condition} " if item.condition else ("otherwise " if item.kind == "otherwise" else "")
        parts.append(f"{condition}→ {name}" + (" (repeat)" if item.loop else ""))
    return "; ".join(parts)


def _next_key(step: Step) -> list[tuple]:
    return [(item.kind, item.condition, item.target_id, item.loop) for item in step.next]


def _fields(step: Step, steps: dict[str, Step]) -> dict[str, str]:
    return {
        "Name": step.name,
        "Kind": step.type_label,
        "Who": step.role,
        "Instructions": step.instructions.text,
        "Form": "; ".join(
            f"{f.label} ({f.type}{', required' if f.required else ''}"
            + (f": {', '.join(f.options)}" if f.options else "") + ")"
            for f in step.form_fields
        ),
        "Deadlines": "; ".join(step.deadlines),
        "Exceptions": "; ".join(step.exceptions),
        "Next": _next_text(step, steps),
        "Notes": "; ".join(note for note in step.notes if not note.startswith("Continues once")),
        "Calls": step.called_element or "",
    }


def _steps(chapters: list[Chapter]) -> dict[str, Step]:
    return {step.id: step for chapter in chapters for step in chapter.walk()}


def diff_sops(
    old_document: BpmnDocument,
    new_document: BpmnDocument,
    process_id: str,
    *,
    old_version: int | str,
    new_version: int | str,
) -> SopDiff:
    """Compare the SOP of ``process_id`` (and the other processes of its file) in two documents."""
    old_chapters = build_chapters(old_document, process_id)
    new_chapters = build_chapters(new_document, process_id)
    old_steps, new_steps = _steps(old_chapters), _steps(new_chapters)
    changes: list[StepChange] = []
    for step_id, step in new_steps.items():
        before = old_steps.get(step_id)
        if before is None:
            changes.append(StepChange("added", step_id, step.name, new_number=step.number))
            continue
        old_fields, new_fields = _fields(before, old_steps), _fields(step, new_steps)
        differing = [FieldChange(label, old_fields[label], new_fields[label])
                     for label in new_fields if old_fields[label] != new_fields[label]]
        if _next_key(before) == _next_key(step):  # same paths; only a target's name changed
            differing = [change for change in differing if change.label != "Next"]
        if differing:
            changes.append(StepChange("changed", step_id, step.name, before.number, step.number, differing))
    for step_id, step in old_steps.items():
        if step_id not in new_steps:
            changes.append(StepChange("removed", step_id, step.name, old_number=step.number))
    old_purpose = old_chapters[0].documentation.text if old_chapters else ""
    new_purpose = new_chapters[0].documentation.text if new_chapters else ""
    purpose = FieldChange("Purpose", old_purpose, new_purpose) if old_purpose != new_purpose else None
    title = new_chapters[0].name if new_chapters else process_id
    return SopDiff(process_id, title, old_version, new_version, purpose, changes)


def render_sop_diff_html(diff: SopDiff, *, link_prefix: str = "") -> str:
    """The comparison as one HTML page (same style as the handbook, no scripts)."""
    return template_environment().get_template("sop_diff.html").render(diff=diff, link_prefix=link_prefix)
