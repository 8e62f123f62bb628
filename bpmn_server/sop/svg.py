"""The model's own layout (BPMNDI) drawn as inline SVG: one picture per ``BPMNDiagram``.

No JavaScript: every shape is a ``<g data-element-id>``; shapes of elements that have a step on the
page are wrapped in ``<a href="#step-<id>">`` so a click lands on the step. The notation follows
BPMN 2.0 §7 and §10–13 closely enough to be read like the modeler drew it: task type markers, loop
and multi-instance markers, event definitions (filled when thrown), interrupting (solid) versus
non-interrupting (dashed) events, gateway markers, data objects and stores, pools and lanes with
their names rotated, expanded and collapsed sub-processes, annotations, groups, and sequence,
message, association and data-association edges with their arrowheads. A process with no layout
at all gets a simple automatic left-to-right layout (see ``auto_layout``).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from lxml import etree

from ..parser.document import FLOW_NODE_TAGS, BpmnDocument
from ..parser.namespaces import BPMN, BPMNDI, DC, DI, local_name, q

OMG_COLOR = "http://www.omg.org/spec/BPMN/non-normative/color/1.0"
BIO_COLOR = "http://bpmn.io/schema/bpmn/biocolor/1.0"
_COLOR = re.compile(r"^(#[0-9a-fA-F]{3,8}|[a-zA-Z]{3,20}|rgba?\([\d\s.,%]+\))$")

ACTIVITY_TAGS = frozenset(
    {"task", "userTask", "manualTask", "serviceTask", "scriptTask", "businessRuleTask", "sendTask",
     "receiveTask", "callActivity", "subProcess", "transaction", "adHocSubProcess"}
)
EVENT_TAGS = frozenset({"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"})
GATEWAY_TAGS = frozenset(
    {"exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway", "complexGateway"}
)
EDGE_TAGS = frozenset(
    {"sequenceFlow", "messageFlow", "association", "dataInputAssociation", "dataOutputAssociation",
     "conversationLink"}
)
FONT = "Arial, Helvetica, sans-serif"
LineBreaker = Callable[[str, float, float], list[str]]


@dataclass
class Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


@dataclass
class DrawnShape:
    """One shape to draw: the semantic element (None when the DI points nowhere), bounds and DI flags."""

    di_id: str
    element_id: str
    element: etree._Element | None
    box: Box
    label: Box | None = None
    expanded: bool | None = None
    horizontal: bool | None = None
    marker_visible: bool | None = None
    stroke: str | None = None
    fill: str | None = None


@dataclass
class DrawnEdge:
    di_id: str
    element_id: str
    element: etree._Element | None
    points: list[tuple[float, float]]
    label: Box | None = None
    stroke: str | None = None


@dataclass
class Diagram:
    """One picture of the model: what ``render_diagrams`` returns for each ``BPMNDiagram``."""

    id: str
    name: str
    svg: str
    element_ids: list[str] = field(default_factory=list)
    automatic: bool = False


# -- reading BPMNDI -----------------------------------------------------------------------------


def _bounds(element: etree._Element | None) -> Box | None:
    if element is None:
        return None
    bounds = element.find(q("Bounds", DC))
    if bounds is None:
        return None
    try:
        box = Box(*(float(bounds.get(k) or 0) for k in ("x", "y", "width", "height")))
    except ValueError:
        return None
    if not all(math.isfinite(v) for v in (box.x, box.y, box.w, box.h)):
        return None
    return box


def _flag(element: etree._Element, name: str) -> bool | None:
    value = element.get(name)
    return None if value is None else value.strip().lower() == "true"


def _color(element: etree._Element, *names: tuple[str, str]) -> str | None:
    for ns, name in names:
        value = (element.get(f"{{{ns}}}{name}") or "").strip()
        if value and _COLOR.match(value):
            return value
    return None


def read_plane(plane: etree._Element, by_id: dict[str, etree._Element]) -> tuple[list[DrawnShape], list[DrawnEdge]]:
    """The shapes and edges of one ``BPMNPlane``, in document order."""
    shapes: list[DrawnShape] = []
    edges: list[DrawnEdge] = []
    for di in plane.iter(q("BPMNShape", BPMNDI), q("BPMNEdge", BPMNDI)):
        ref = (di.get("bpmnElement") or "").strip()
        element = by_id.get(ref)
        label = _bounds(di.find(q("BPMNLabel", BPMNDI)))
        stroke = _color(di, (OMG_COLOR, "border-color"), (BIO_COLOR, "stroke"))
        if di.tag == q("BPMNShape", BPMNDI):
            box = _bounds(di)
            if box is None:
                continue
            fill = _color(di, (OMG_COLOR, "background-color"), (BIO_COLOR, "fill"))
            shapes.append(DrawnShape(
                di_id=di.get("id") or ref, element_id=ref, element=element, box=box, label=label,
                expanded=_flag(di, "isExpanded"), horizontal=_flag(di, "isHorizontal"),
                marker_visible=_flag(di, "isMarkerVisible"), stroke=stroke, fill=fill,
            ))
        else:
            points = []
            for waypoint in di.findall(q("waypoint", DI)):
                try:
                    point = (float(waypoint.get("x") or 0), float(waypoint.get("y") or 0))
                except ValueError:
                    continue
                if all(math.isfinite(v) for v in point):
                    points.append(point)
            if len(points) >= 2:
                edges.append(DrawnEdge(di.get("id") or ref, ref, element, points, label, stroke))
    return shapes, edges


# -- text ---------------------------------------------------------------------------------------


def wrap(text: str, width: float, size: float = 12) -> list[str]:
    """Lines of ``text`` that fit ``width`` pixels, estimated from an average glyph width."""
    per_line = max(4, int(width / (size * 0.52)))
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        current = ""
        for word in paragraph.split():
            while len(word) > per_line:
                if current:
                    lines.append(current)
                    current = ""
                lines.append(word[:per_line])
                word = word[per_line:]
            if not current:
                current = word
            elif len(current) + 1 + len(word) <= per_line:
                current += " " + word
            else:
                lines.append(current)
                current = word
        if current:
            lines.append(current)
    return lines


def _text_block(lines: list[str], x: float, y: float, size: float, anchor: str = "middle",
                cls: str = "bpmn-label") -> str:
    """Lines as one ``<text>``, the first baseline at ``y``."""
    if not lines:
        return ""
    spans = "".join(
        f'<tspan x="{x:.1f}" dy="{0 if i == 0 else size * 1.2:.1f}">{html.escape(line)}</tspan>'
        for i, line in enumerate(lines)
    )
    return (f'<text class="{cls}" x="{x:.1f}" y="{y:.1f}" font-size="{size:g}" '
            f'text-anchor="{anchor}">{spans}</text>')


def _centred_text(text: str, box: Box, size: float = 12, padding: float = 4) -> str:
    lines = wrap(text, box.w - 2 * padding, size)
    max_lines = max(1, int((box.h - 2 * padding) / (size * 1.2)))
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(1, len(lines[-1]) - 1)] + "…"
    height = len(lines) * size * 1.2
    first = box.cy - height / 2 + size * 0.95
    return _text_block(lines, box.cx, first, size)


def _outside_label(text: str, shape: DrawnShape, size: float = 11) -> str:
    """The label of an event, gateway or data element: its BPMNLabel bounds, else centred below it."""
    box = shape.label
    if box is not None and box.w > 0:
        lines = wrap(text, max(box.w, 40) + 8, size)
        return _text_block(lines, box.cx, box.y + size * 0.95, size)
    width = max(90.0, shape.box.w + 40)
    lines = wrap(text, width, size)
    return _text_block(lines, shape.box.cx, shape.box.y + shape.box.h + 4 + size * 0.95, size)


# -- names --------------------------------------------------------------------------------------


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


def element_label(element: etree._Element | None, by_id: dict[str, etree._Element]) -> str:
    """The text a modeler shows for an element (name, annotation text, group category, data state)."""
    if element is None:
        return ""
    tag = local_name(element.tag)
    if tag == "textAnnotation":
        return "\n".join("".join(t.itertext()).strip() for t in element.findall(q("text")))
    if tag == "group":
        value = by_id.get((element.get("categoryValueRef") or "").strip())
        if value is not None:
            return _clean(value.get("value")) or _clean(value.get("name"))
        return _clean(element.get("name"))
    name = _clean(element.get("name"))
    if not name and tag in ("dataObjectReference", "dataStoreReference"):
        target = by_id.get(element.get("dataObjectRef") or element.get("dataStoreRef") or "")
        name = _clean(target.get("name")) if target is not None else ""
    state = element.find(q("dataState"))
    if state is not None and state.get("name"):
        name = f"{name} [{_clean(state.get('name'))}]".strip()
    return name


# -- shapes -------------------------------------------------------------------------------------

_EVENT_ICONS = {
    # drawn for an event of radius 18 centred on (0, 0)
    "message": ('<rect x="-9" y="-6.5" width="18" height="13"/>', '<path d="M -9 -6.5 L 0 1 L 9 -6.5"/>'),
    "timer": ('<circle r="11"/>', '<path d="M 0 -11 V -8 M 11 0 H 8 M 0 11 V 8 M -11 0 H -8 '
              'M 5.5 -9.5 L 4 -7 M 9.5 -5.5 L 7 -4 M -5.5 -9.5 L -4 -7 M -9.5 -5.5 L -7 -4 '
              'M 0 0 L 1.5 -7.5 M 0 0 L 5.5 1.5"/>'),
    "signal": ('<path d="M 0 -11 L 10 7 L -10 7 Z"/>', ""),
    "error": ('<path d="M -9 9 L -4 -9 L 2 1 L 8 -10 L 4 9 L -2 -1 Z"/>', ""),
    "escalation": ('<path d="M 0 -11 L 8 9 L 0 2 L -8 9 Z"/>', ""),
    "conditional": ('<rect x="-7.5" y="-10" width="15" height="20"/>',
                    '<path d="M -5 -6 H 5 M -5 -2 H 5 M -5 2 H 5 M -5 6 H 5"/>'),
    "link": ('<path d="M -9 -3.5 H 2 V -9 L 10 0 L 2 9 V 3.5 H -9 Z"/>', ""),
    "terminate": ('<circle r="11"/>', ""),
    "compensate": ('<path d="M -11 0 L -1 -7 V 7 Z M -1 0 L 9 -7 V 7 Z"/>', ""),
    "cancel": ('<path d="M -8 -11 L 0 -3 L 8 -11 L 11 -8 L 3 0 L 11 8 L 8 11 L 0 3 L -8 11 L -11 8 '
               'L -3 0 L -11 -8 Z"/>', ""),
    "multiple": ('<path d="M 0 -11 L 10.5 -3.4 L 6.5 9 H -6.5 L -10.5 -3.4 Z"/>', ""),
    "parallelMultiple": ('<path d="M -3 -11 H 3 V -3 H 11 V 3 H 3 V 11 H -3 V 3 H -11 V -3 H -3 Z"/>', ""),
}
_TASK_ICONS = {
    # drawn in a 16×16 box at the task's top-left corner
    "userTask": '<circle cx="8" cy="4.5" r="3.5"/><path d="M 1 16 C 1 8.5 15 8.5 15 16 Z"/>',
    "serviceTask": '<circle cx="8" cy="8" r="5.5" stroke-width="3" stroke-dasharray="2.2 1.6"/>'
                   '<circle cx="8" cy="8" r="2.2"/>',
    "scriptTask": '<path d="M 4 1 H 15 C 12 5 16 10 12 15 H 1 C 5 10 1 5 4 1 Z M 5 5 H 11 M 5.5 8 H 11.5 '
                  'M 5 11 H 11"/>',
    "manualTask": '<path d="M 1 7 L 5 3 H 14 V 5 H 8 M 6 6 H 15 V 8 H 6 M 6 9 H 14 V 11 H 6 M 6 12 H 12 '
                  'V 14 H 3 L 1 11 Z"/>',
    "sendTask": '<rect class="filled" x="1" y="3" width="15" height="10"/>'
                '<path class="inverse" d="M 1 3 L 8.5 9 L 16 3"/>',
    "receiveTask": '<rect x="1" y="3" width="15" height="10"/><path d="M 1 3 L 8.5 9 L 16 3"/>',
    "businessRuleTask": '<rect x="1" y="2" width="15" height="12"/><rect class="filled" x="1" y="2" '
                        'width="15" height="3.5"/><path d="M 1 9.5 H 16 M 5.5 5.5 V 14"/>',
}


def _event_definition_kind(element: etree._Element) -> str:
    definitions = [local_name(c.tag) for c in element if local_name(c.tag).endswith("EventDefinition")]
    definitions += ["ref"] * len(element.findall(q("eventDefinitionRef")))
    if not definitions:
        return "none"
    if len(definitions) > 1:
        return "parallelMultiple" if (element.get("parallelMultiple") or "").lower() == "true" else "multiple"
    return definitions[0][: -len("EventDefinition")] if definitions[0] != "ref" else "multiple"


def _style(shape: DrawnShape | DrawnEdge, fill: bool = True) -> str:
    parts = []
    if shape.stroke:
        parts.append(f"stroke:{shape.stroke}")
    if fill and isinstance(shape, DrawnShape) and shape.fill:
        parts.append(f"fill:{shape.fill}")
    return f' style="{";".join(parts)}"' if parts else ""


def _draw_event(shape: DrawnShape, tag: str, element: etree._Element) -> str:
    box = shape.box
    r = min(box.w, box.h) / 2
    cx, cy = box.cx, box.cy
    kind = _event_definition_kind(element)
    dashed = (tag == "boundaryEvent" and (element.get("cancelActivity") or "true").lower() == "false") or (
        tag == "startEvent" and (element.get("isInterrupting") or "true").lower() == "false"
    )
    classes = ["event", tag, f"event-{kind}"]
    if dashed:
        classes.append("non-interrupting")
    dash = ' stroke-dasharray="5.5 3"' if dashed else ""
    style = _style(shape)
    parts = [f'<circle class="outline" cx="{cx:.1f}" cy="{cy:.1f}" r="{r:.1f}" '
             f'stroke-width="{4 if tag == "endEvent" else 1.5}"{dash}{style}/>']
    if tag in ("intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"):
        parts.append(f'<circle class="inner" cx="{cx:.1f}" cy="{cy:.1f}" r="{max(r - 3, 1):.1f}" '
                     f'fill="none" stroke-width="1.5"{dash}{_style(shape, fill=False)}/>')
    icon = _EVENT_ICONS.get(kind)
    if icon:
        thrown = tag in ("intermediateThrowEvent", "endEvent") or kind == "terminate"
        scale = r / 18
        parts.append(
            f'<g class="icon {"thrown" if thrown else "caught"}" '
            f'transform="translate({cx:.1f} {cy:.1f}) scale({scale:.3f})">{icon[0]}'
            + (f'<g class="icon-detail">{icon[1]}</g>' if icon[1] else "") + "</g>"
        )
    return f'<g class="{" ".join(classes)}">' + "".join(parts) + "</g>"


def _draw_gateway(shape: DrawnShape, tag: str, element: etree._Element) -> str:
    box = shape.box
    cx, cy = box.cx, box.cy
    points = f"{cx:.1f},{box.y:.1f} {box.x + box.w:.1f},{cy:.1f} {cx:.1f},{box.y + box.h:.1f} {box.x:.1f},{cy:.1f}"
    parts = [f'<polygon class="outline" points="{points}"{_style(shape)}/>']
    scale = min(box.w, box.h) / 50
    marker = ""
    if tag == "exclusiveGateway" and shape.marker_visible is not False:
        marker = '<path class="mark" d="M -8 -8 L 8 8 M 8 -8 L -8 8" stroke-width="4"/>'
    elif tag == "parallelGateway":
        marker = '<path class="mark" d="M 0 -12 V 12 M -12 0 H 12" stroke-width="4"/>'
    elif tag == "inclusiveGateway":
        marker = '<circle class="mark" r="10" fill="none" stroke-width="3"/>'
    elif tag == "complexGateway":
        marker = ('<path class="mark" d="M 0 -12 V 12 M -12 0 H 12 M -8.5 -8.5 L 8.5 8.5 M 8.5 -8.5 L -8.5 8.5" '
                  'stroke-width="3"/>')
    elif tag == "eventBasedGateway":
        parallel = (element.get("eventGatewayType") or "").lower() == "parallel"
        instantiate = (element.get("instantiate") or "").lower() == "true"
        marker = '<circle r="12" fill="none" stroke-width="1.2"/>'
        if not instantiate:
            marker += '<circle r="9.5" fill="none" stroke-width="1.2"/>'
        marker += ('<path d="M -4 -8 H 4 V -4 H 8 V 4 H 4 V 8 H -4 V 4 H -8 V -4 H -4 Z" fill="none" '
                   'stroke-width="1.2"/>' if parallel else
                   '<path d="M 0 -7 L 6.7 -2.2 L 4.1 5.7 H -4.1 L -6.7 -2.2 Z" fill="none" stroke-width="1.2"/>')
    if marker:
        parts.append(f'<g transform="translate({cx:.1f} {cy:.1f}) scale({scale:.3f})">{marker}</g>')
    return f'<g class="gateway {tag}">' + "".join(parts) + "</g>"


def _bottom_markers(element: etree._Element, tag: str, box: Box, collapsed: bool) -> str:
    """The markers centred at an activity's bottom: loop, multi-instance, [+], ad-hoc, compensation."""
    markers: list[str] = []
    if element.find(q("standardLoopCharacteristics")) is not None:
        markers.append('<path d="M 3 11 A 6 6 0 1 1 11 11 M 11 11 L 11.5 6.5 M 11 11 L 15 10" fill="none"/>')
    multi = element.find(q("multiInstanceLoopCharacteristics"))
    if multi is not None:
        if (multi.get("isSequential") or "").lower() == "true":
            markers.append('<path d="M 2 3 H 12 M 2 7 H 12 M 2 11 H 12" stroke-width="2"/>')
        else:
            markers.append('<path d="M 3 2 V 12 M 7 2 V 12 M 11 2 V 12" stroke-width="2"/>')
    if (element.get("isForCompensation") or "").lower() == "true":
        markers.append('<path d="M 0 7 L 7 2 V 12 Z M 7 7 L 14 2 V 12 Z" fill="none"/>')
    if tag == "adHocSubProcess":
        markers.append('<path d="M 1 8 C 3 4 6 4 7 7 C 8 10 11 10 13 6" fill="none" stroke-width="1.5"/>')
    if collapsed:
        markers.append('<rect x="0" y="0" width="14" height="14" fill="white"/><path d="M 7 3 V 11 M 3 7 H 11"/>')
    if not markers:
        return ""
    width = 14 * len(markers) + 4 * (len(markers) - 1)
    x = box.cx - width / 2
    y = box.y + box.h - 18
    out = []
    for index, marker in enumerate(markers):
        out.append(f'<g class="marker" transform="translate({x + index * 18:.1f} {y:.1f})">{marker}</g>')
    return "".join(out)


def _draw_activity(shape: DrawnShape, tag: str, element: etree._Element, label: str,
                   has_children_drawn: bool, by_id: dict[str, etree._Element]) -> str:
    box = shape.box
    expanded = shape.expanded if shape.expanded is not None else has_children_drawn
    is_container = tag in ("subProcess", "transaction", "adHocSubProcess") or (tag == "callActivity" and expanded)
    event_sub = (element.get("triggeredByEvent") or "").lower() == "true"
    classes = ["activity", tag]
    stroke_width = 4 if tag == "callActivity" else 1.5
    dash = ' stroke-dasharray="2 2"' if event_sub else ""
    rx = 10 if box.w > 20 else 3
    parts = [f'<rect class="outline" x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" height="{box.h:.1f}" '
             f'rx="{rx}" stroke-width="{stroke_width}"{dash}{_style(shape)}/>']
    if tag == "transaction":
        parts.append(f'<rect x="{box.x + 3:.1f}" y="{box.y + 3:.1f}" width="{max(box.w - 6, 1):.1f}" '
                     f'height="{max(box.h - 6, 1):.1f}" rx="{max(rx - 3, 1)}" fill="none"/>')
    icon = _TASK_ICONS.get(tag)
    if icon:
        parts.append(f'<g class="task-icon" transform="translate({box.x + 6:.1f} {box.y + 6:.1f})">{icon}</g>')
    collapsed = not expanded and (is_container or (tag == "callActivity" and _calls_process(element, by_id)))
    markers = _bottom_markers(element, tag, box, collapsed)
    parts.append(markers)
    if is_container and expanded:
        classes.append("expanded")
        lines = wrap(label, box.w - 16, 12)[:3]
        parts.append(_text_block(lines, box.x + 8, box.y + 16, 12, anchor="start"))
    elif label:
        top = 10 if icon and box.h >= 50 else 0
        inner = Box(box.x, box.y + top, box.w, box.h - top - (14 if markers else 0))
        parts.append(_centred_text(label, inner))
    return f'<g class="{" ".join(classes)}">' + "".join(parts) + "</g>"


def _calls_process(element: etree._Element, by_id: dict[str, etree._Element]) -> bool:
    """Whether a call activity calls a process (drawn with [+]) rather than a global task."""
    called = (element.get("calledElement") or "").strip()
    target = by_id.get(called)
    return bool(called) and (target is None or not local_name(target.tag).startswith("global"))


def _draw_data(shape: DrawnShape, tag: str, element: etree._Element, by_id: dict) -> str:
    box = shape.box
    x, y, w, h = box.x, box.y, box.w, box.h
    style = _style(shape)
    if tag == "dataStoreReference":
        ry = min(8.0, h / 6)
        body = (f'<path class="outline" d="M {x:.1f} {y + ry:.1f} A {w / 2:.1f} {ry:.1f} 0 0 1 {x + w:.1f} {y + ry:.1f} '
                f'V {y + h - ry:.1f} A {w / 2:.1f} {ry:.1f} 0 0 1 {x:.1f} {y + h - ry:.1f} Z"{style}/>'
                f'<path d="M {x:.1f} {y + ry:.1f} A {w / 2:.1f} {ry:.1f} 0 0 0 {x + w:.1f} {y + ry:.1f} '
                f'M {x:.1f} {y + 2 * ry:.1f} A {w / 2:.1f} {ry:.1f} 0 0 0 {x + w:.1f} {y + 2 * ry:.1f} '
                f'M {x:.1f} {y + 3 * ry:.1f} A {w / 2:.1f} {ry:.1f} 0 0 0 {x + w:.1f} {y + 3 * ry:.1f}" fill="none"/>')
        return f'<g class="data {tag}">{body}</g>'
    fold = min(12.0, w / 3)
    parts = [f'<path class="outline" d="M {x:.1f} {y:.1f} H {x + w - fold:.1f} L {x + w:.1f} {y + fold:.1f} '
             f'V {y + h:.1f} H {x:.1f} Z"{style}/>',
             f'<path d="M {x + w - fold:.1f} {y:.1f} V {y + fold:.1f} H {x + w:.1f}" fill="none"/>']
    if tag in ("dataInput", "dataOutput"):
        fill = "black" if tag == "dataOutput" else "white"
        parts.append(f'<path d="M {x + 4:.1f} {y + 6:.1f} H {x + 11:.1f} V {y + 3:.1f} L {x + 17:.1f} {y + 8.5:.1f} '
                     f'L {x + 11:.1f} {y + 14:.1f} V {y + 11:.1f} H {x + 4:.1f} Z" fill="{fill}"/>')
    target = by_id.get(element.get("dataObjectRef") or "") if tag == "dataObjectReference" else element
    if target is not None and (target.get("isCollection") or "").lower() == "true":
        mx, my = box.cx, y + h - 12
        parts.append(f'<path d="M {mx - 4:.1f} {my:.1f} v 9 M {mx:.1f} {my:.1f} v 9 M {mx + 4:.1f} {my:.1f} v 9" '
                     'stroke-width="1.5"/>')
    return f'<g class="data {tag}">' + "".join(parts) + "</g>"


def _draw_container(shape: DrawnShape, tag: str, label: str, has_process: bool) -> str:
    """A pool (participant) or a lane: its rectangle and its name in a header band, rotated when horizontal."""
    box = shape.box
    horizontal = shape.horizontal if shape.horizontal is not None else box.w >= box.h
    parts = [f'<rect class="outline" x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" height="{box.h:.1f}"'
             f'{_style(shape)}/>']
    band = 30.0
    if tag == "participant" and not has_process:
        parts.append(_centred_text(label, box, 12))  # a black-box pool: name in the middle
    elif horizontal:
        if tag == "participant":
            parts.append(f'<path d="M {box.x + band:.1f} {box.y:.1f} V {box.y + box.h:.1f}"/>')
        lines = wrap(label, box.h - 10, 12)[:2]
        cx, cy = box.x + band / 2, box.cy
        offset = (len(lines) - 1) * 14.4 / 2
        text = _text_block(lines, 0, 0, 12)
        parts.append(f'<g transform="translate({cx - offset + 4:.1f} {cy:.1f}) rotate(-90)">{text}</g>')
    else:
        if tag == "participant":
            parts.append(f'<path d="M {box.x:.1f} {box.y + band:.1f} H {box.x + box.w:.1f}"/>')
        lines = wrap(label, box.w - 10, 12)[:2]
        parts.append(_text_block(lines, box.cx, box.y + 19, 12))
    return f'<g class="{tag}">' + "".join(parts) + "</g>"


def _draw_annotation(shape: DrawnShape, label: str) -> str:
    box = shape.box
    path = (f'<path class="bracket" d="M {box.x + 10:.1f} {box.y:.1f} H {box.x:.1f} V {box.y + box.h:.1f} '
            f'H {box.x + 10:.1f}" fill="none"{_style(shape, fill=False)}/>')
    lines = wrap(label, box.w - 10, 11)
    max_lines = max(1, int(box.h / 13.2) + 2)
    text = _text_block(lines[:max_lines], box.x + 5, box.y + 14, 11, anchor="start")
    return f'<g class="textAnnotation">{path}{text}</g>'


def _draw_group(shape: DrawnShape, label: str) -> str:
    box = shape.box
    rect = (f'<rect class="outline" x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" height="{box.h:.1f}" rx="10" '
            f'fill="none" stroke-dasharray="8 3 1 3"{_style(shape, fill=False)}/>')
    if shape.label is not None:
        text = _text_block(wrap(label, shape.label.w + 10, 11), shape.label.cx, shape.label.y + 11, 11)
    else:
        text = _text_block(wrap(label, box.w - 10, 11)[:2], box.cx, box.y + 15, 11)
    return f'<g class="group">{rect}{text}</g>'


def _draw_unknown(shape: DrawnShape, label: str) -> str:
    box = shape.box
    rect = (f'<rect class="outline unknown" x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" height="{box.h:.1f}" '
            f'fill="none" stroke-dasharray="3 3"/>')
    return f'<g class="unknown">{rect}{_centred_text(label, box, 11) if label else ""}</g>'


# -- edges --------------------------------------------------------------------------------------


def _draw_edge(edge: DrawnEdge, element: etree._Element | None, by_id: dict, prefix: str,
               source_tag: str) -> str:
    tag = local_name(element.tag) if element is not None else "edge"
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in edge.points)
    style = _style(edge)
    attrs = ""
    if tag == "sequenceFlow":
        attrs = f' marker-end="url(#{prefix}-arrow)"'
        if element is not None and element.find(q("conditionExpression")) is not None and source_tag in ACTIVITY_TAGS:
            attrs += f' marker-start="url(#{prefix}-condition)"'
    elif tag == "messageFlow":
        attrs = f' stroke-dasharray="10 6" marker-start="url(#{prefix}-message-start)" marker-end="url(#{prefix}-open-arrow)"'
    elif tag in ("dataInputAssociation", "dataOutputAssociation"):
        attrs = f' stroke-dasharray="3 4" marker-end="url(#{prefix}-line-arrow)"'
    elif tag == "association":
        direction = (element.get("associationDirection") or "None") if element is not None else "None"
        attrs = ' stroke-dasharray="3 4"'
        if direction in ("One", "Both"):
            attrs += f' marker-end="url(#{prefix}-line-arrow)"'
        if direction == "Both":
            attrs += f' marker-start="url(#{prefix}-line-arrow-start)"'
    parts = [f'<polyline class="line" points="{points}" fill="none"{attrs}{style}/>']
    if tag == "sequenceFlow" and element is not None:
        source = by_id.get(element.get("sourceRef") or "")
        if source is not None and source.get("default") == element.get("id"):
            parts.append(_default_slash(edge.points))
    label = _clean(element.get("name")) if element is not None else ""
    if label:
        if edge.label is not None and edge.label.w > 0:
            lines = wrap(label, edge.label.w + 10, 11)
            parts.append(_text_block(lines, edge.label.cx, edge.label.y + 10.5, 11))
        else:
            (x1, y1), (x2, y2) = _middle_segment(edge.points)
            parts.append(_text_block(wrap(label, 100, 11), (x1 + x2) / 2 + 4, (y1 + y2) / 2 - 6, 11, anchor="start"))
    return f'<g class="edge {tag}">' + "".join(parts) + "</g>"


def _middle_segment(points: list[tuple[float, float]]) -> tuple[tuple[float, float], tuple[float, float]]:
    index = max(0, (len(points) - 1) // 2)
    return points[index], points[min(index + 1, len(points) - 1)]


def _default_slash(points: list[tuple[float, float]]) -> str:
    (x1, y1), (x2, y2) = points[0], points[1]
    length = math.hypot(x2 - x1, y2 - y1) or 1
    ux, uy = (x2 - x1) / length, (y2 - y1) / length
    mx, my = x1 + ux * min(12, length / 2), y1 + uy * min(12, length / 2)
    # a short stroke across the line, tilted 45°
    px, py = -uy, ux
    ax, ay = mx + (px - ux) * 5, my + (py - uy) * 5
    bx, by = mx - (px - ux) * 5, my - (py - uy) * 5
    return f'<path class="default-marker" d="M {ax:.1f} {ay:.1f} L {bx:.1f} {by:.1f}" stroke-width="1.5"/>'


def _defs(prefix: str) -> str:
    return (
        "<defs>"
        f'<marker id="{prefix}-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto"><path d="M 0 0 L 10 5 L 0 10 Z" fill="#222"/></marker>'
        f'<marker id="{prefix}-open-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
        'orient="auto"><path d="M 0 0 L 10 5 L 0 10 Z" fill="white" stroke="#222"/></marker>'
        f'<marker id="{prefix}-line-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
        'orient="auto"><path d="M 0 0 L 10 5 L 0 10" fill="none" stroke="#222"/></marker>'
        f'<marker id="{prefix}-line-arrow-start" viewBox="0 0 10 10" refX="0" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto"><path d="M 10 0 L 0 5 L 10 10" fill="none" stroke="#222"/></marker>'
        f'<marker id="{prefix}-message-start" viewBox="0 0 10 10" refX="5" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto"><circle cx="5" cy="5" r="4" fill="white" stroke="#222"/></marker>'
        f'<marker id="{prefix}-condition" viewBox="0 0 20 10" refX="0" refY="5" markerWidth="14" markerHeight="7" '
        'orient="auto"><path d="M 0 5 L 10 0 L 20 5 L 10 10 Z" fill="white" stroke="#222"/></marker>'
        "</defs>"
    )


# -- one diagram --------------------------------------------------------------------------------

_LAYER = {"participant": 0, "lane": 1, "group": 9, "textAnnotation": 3}


def _layer(shape: DrawnShape, expanded_ids: set[str]) -> tuple[int, float]:
    tag = local_name(shape.element.tag) if shape.element is not None else ""
    if tag in _LAYER:
        return _LAYER[tag], 0.0
    if shape.element_id in expanded_ids:
        return 2, -shape.box.w * shape.box.h  # larger containers first, nested ones above them
    if tag == "boundaryEvent":
        return 5, 0.0
    return 4, 0.0


def draw(
    shapes: list[DrawnShape],
    edges: list[DrawnEdge],
    by_id: dict[str, etree._Element],
    *,
    prefix: str,
    title: str,
    links: dict[str, str],
) -> str:
    """One SVG document (as markup) of the given shapes and edges."""
    drawn_ids = {s.element_id for s in shapes}
    expanded_ids = set()
    for shape in shapes:
        element = shape.element
        if element is not None and local_name(element.tag) in ("subProcess", "transaction", "adHocSubProcess"):
            has_children = any(child.get("id") in drawn_ids for child in element)
            if shape.expanded if shape.expanded is not None else has_children:
                expanded_ids.add(shape.element_id)
        elif element is not None and local_name(element.tag) == "callActivity" and shape.expanded:
            expanded_ids.add(shape.element_id)  # drawn open, with the called process's shapes inside
    xs: list[float] = []
    ys: list[float] = []
    for shape in shapes:
        for box in (shape.box, shape.label):
            if box is not None:
                xs += [box.x, box.x + box.w]
                ys += [box.y, box.y + box.h]
        if shape.label is None and shape.element is not None and local_name(shape.element.tag) not in _LAYER:
            ys.append(shape.box.y + shape.box.h + 40)  # room for a label drawn below
    for edge in edges:
        xs += [p[0] for p in edge.points]
        ys += [p[1] for p in edge.points]
        if edge.label is not None:
            xs += [edge.label.x, edge.label.x + edge.label.w]
            ys += [edge.label.y, edge.label.y + edge.label.h]
    if not xs:
        xs, ys = [0, 100], [0, 50]
    margin = 20
    min_x, min_y = min(xs) - margin, min(ys) - margin
    width, height = max(xs) - min_x + margin, max(ys) - min_y + margin
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="bpmn-diagram" role="img" '
        f'viewBox="{min_x:.0f} {min_y:.0f} {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
        f'font-family="{FONT}" aria-label="{html.escape(title)}">',
        f"<title>{html.escape(title)}</title>",
        _defs(prefix),
    ]
    ordered = sorted(enumerate(shapes), key=lambda item: (*_layer(item[1], expanded_ids), item[0]))
    deferred_labels: list[str] = []
    for _, shape in ordered:
        out.append(_shape_markup(shape, by_id, links, drawn_ids, deferred_labels))
    for edge in edges:
        element = edge.element
        source_tag = ""
        if element is not None:
            source = by_id.get(element.get("sourceRef") or "")
            source_tag = local_name(source.tag) if source is not None else ""
        markup = _draw_edge(edge, element, by_id, prefix, source_tag)
        out.append(_wrap_element(markup, edge.element_id, edge.di_id, element, links, by_id))
    out.extend(deferred_labels)
    out.append("</svg>")
    return "".join(out)


def _shape_markup(shape: DrawnShape, by_id: dict, links: dict[str, str], drawn_ids: set[str],
                  deferred_labels: list[str]) -> str:
    element = shape.element
    label = element_label(element, by_id)
    if element is None or element.tag.rsplit("}", 1)[0] != f"{{{BPMN}":
        markup = _draw_unknown(shape, shape.element_id)
        return _wrap_element(markup, shape.element_id, shape.di_id, element, links, by_id)
    tag = local_name(element.tag)
    if tag in ACTIVITY_TAGS:
        has_children = any(child.get("id") in drawn_ids for child in element)
        markup = _draw_activity(shape, tag, element, label, has_children, by_id)
    elif tag in EVENT_TAGS:
        markup = _draw_event(shape, tag, element)
        if label:
            deferred_labels.append(_outside_label(label, shape))
    elif tag in GATEWAY_TAGS:
        markup = _draw_gateway(shape, tag, element)
        if label:
            deferred_labels.append(_outside_label(label, shape))
    elif tag in ("dataObjectReference", "dataObject", "dataStoreReference", "dataInput", "dataOutput"):
        markup = _draw_data(shape, tag, element, by_id)
        if label:
            deferred_labels.append(_outside_label(label, shape))
    elif tag in ("participant", "lane"):
        has_process = tag == "lane" or bool(element.get("processRef"))
        markup = _draw_container(shape, tag, label, has_process)
    elif tag == "textAnnotation":
        markup = _draw_annotation(shape, label)
    elif tag == "group":
        markup = _draw_group(shape, label)
    else:
        markup = _draw_unknown(shape, label or tag)
    return _wrap_element(markup, shape.element_id, shape.di_id, element, links, by_id)


def _wrap_element(markup: str, element_id: str, di_id: str, element: etree._Element | None,
                  links: dict[str, str], by_id: dict) -> str:
    """The element's markup in a ``<g data-element-id>`` with a tooltip, inside a link when it has a step."""
    name = element_label(element, by_id) if element is not None else ""
    kind = local_name(element.tag) if element is not None else "unknown"
    tooltip = f"<title>{html.escape(name or kind)}</title>"
    inner = markup.replace(">", ">" + tooltip, 1) if markup.startswith("<g") else tooltip + markup
    group = (f'<g class="element" data-element-id="{html.escape(element_id)}" '
             f'data-di-id="{html.escape(di_id)}">{inner}</g>')
    href = links.get(element_id)
    if href:
        return f'<a href="{html.escape(href)}" class="step-link">{group}</a>'
    return group


# -- automatic layout for processes without BPMNDI --------------------------------------------


def auto_layout(process: etree._Element, order: Iterable[str]) -> tuple[list[DrawnShape], list[DrawnEdge]]:
    """A simple left-to-right layout of a process's top-level flow nodes: a column per flow depth.

    ``order`` is the SOP's step order; a node sits one column right of its furthest predecessor
    (loop-back flows ignored), rows fill in step order. Sequence flows become elbow lines.
    """
    nodes = {c.get("id"): c for c in process if local_name(c.tag) in FLOW_NODE_TAGS and c.get("id")}
    order = [i for i in order if i in nodes]
    position = {node_id: index for index, node_id in enumerate(order)}
    flows = [c for c in process if local_name(c.tag) == "sequenceFlow"]
    column: dict[str, int] = {}
    for node_id in order:
        node = nodes[node_id]
        if local_name(node.tag) == "boundaryEvent":
            continue
        preds = [f.get("sourceRef") for f in flows if f.get("targetRef") == node_id]
        earlier = [column[p] for p in preds if p in column and position.get(p, 1 << 30) < position[node_id]]
        column[node_id] = (max(earlier) + 1) if earlier else 0
    rows: dict[int, int] = {}
    shapes: list[DrawnShape] = []
    boxes: dict[str, Box] = {}
    for node_id in order:
        node = nodes[node_id]
        tag = local_name(node.tag)
        if tag == "boundaryEvent":
            continue
        col = column[node_id]
        row = rows.get(col, 0)
        rows[col] = row + 1
        w, h = (100, 80) if tag in ACTIVITY_TAGS else ((50, 50) if tag in GATEWAY_TAGS else (36, 36))
        x = 40 + col * 160 + (100 - w) / 2
        y = 40 + row * 130 + (80 - h) / 2
        boxes[node_id] = Box(x, y, w, h)
        shapes.append(DrawnShape(f"auto-{node_id}", node_id, node, boxes[node_id], expanded=False))
    for node_id in order:
        node = nodes[node_id]
        host = boxes.get(node.get("attachedToRef") or "")
        if local_name(node.tag) == "boundaryEvent" and host is not None:
            siblings = sum(1 for s in shapes if s.element is not None
                           and s.element.get("attachedToRef") == node.get("attachedToRef"))
            boxes[node_id] = Box(host.x + host.w - 26 - siblings * 30, host.y + host.h - 18, 36, 36)
            shapes.append(DrawnShape(f"auto-{node_id}", node_id, node, boxes[node_id]))
    edges: list[DrawnEdge] = []
    for flow in flows:
        source, target = boxes.get(flow.get("sourceRef") or ""), boxes.get(flow.get("targetRef") or "")
        if source is None or target is None:
            continue
        if target.x > source.x + source.w:
            start, end = (source.x + source.w, source.cy), (target.x, target.cy)
            mid = (start[0] + end[0]) / 2
            points = [start, (mid, start[1]), (mid, end[1]), end]
        else:  # a flow back (or down a column): leave below, come in from below
            start, end = (source.cx, source.y + source.h), (target.cx, target.y + target.h)
            low = max(source.y + source.h, target.y + target.h) + 25
            points = [start, (start[0], low), (end[0], low), end]
        edges.append(DrawnEdge(f"auto-{flow.get('id')}", flow.get("id") or "", flow, points))
    return shapes, edges


# -- the document's diagrams --------------------------------------------------------------------


def render_diagrams(
    document: BpmnDocument,
    links: dict[str, str] | None = None,
    *,
    orders: dict[str, list[str]] | None = None,
) -> list[Diagram]:
    """One SVG per ``BPMNDiagram`` of the document, plus an automatic layout for each process that
    has flow nodes but no shape in any diagram (``orders`` gives that process's step order).

    ``links`` maps element ids to hrefs; by default every flow node links to ``#step-<id>``.
    """
    by_id = document.elements_by_id
    if links is None:
        links = {key: f"#step-{key}" for key, el in by_id.items() if local_name(el.tag) in FLOW_NODE_TAGS}
    diagrams: list[Diagram] = []
    drawn: set[str] = set()
    for index, diagram in enumerate(document.root.iter(q("BPMNDiagram", BPMNDI)), start=1):
        plane = diagram.find(q("BPMNPlane", BPMNDI))
        if plane is None:
            continue
        shapes, edges = read_plane(plane, by_id)
        if not shapes and not edges:
            continue
        title = _clean(diagram.get("name")) or _plane_title(plane, by_id) or f"Diagram {index}"
        svg = draw(shapes, edges, by_id, prefix=f"d{index}", title=title, links=links)
        ids = [s.element_id for s in shapes] + [e.element_id for e in edges]
        drawn.update(ids)
        diagrams.append(Diagram(id=diagram.get("id") or f"diagram-{index}", name=title, svg=svg, element_ids=ids))
    for process in document.process_elements:
        node_ids = [c.get("id") for c in process if local_name(c.tag) in FLOW_NODE_TAGS and c.get("id")]
        if not node_ids or any(i in drawn for i in node_ids):
            continue
        order = (orders or {}).get(process.get("id") or "") or node_ids
        shapes, edges = auto_layout(process, order)
        title = (_clean(process.get("name")) or process.get("id") or "Process") + " (automatic layout)"
        prefix = f"auto{len(diagrams) + 1}"
        svg = draw(shapes, edges, by_id, prefix=prefix, title=title, links=links)
        ids = [s.element_id for s in shapes] + [e.element_id for e in edges]
        diagrams.append(Diagram(id=f"auto-{process.get('id')}", name=title, svg=svg, element_ids=ids,
                                automatic=True))
    return diagrams


def _plane_title(plane: etree._Element, by_id: dict[str, etree._Element]) -> str:
    element = by_id.get(plane.get("bpmnElement") or "")
    if element is None:
        return ""
    name = _clean(element.get("name"))
    if name or local_name(element.tag) != "collaboration":
        return name
    pools = [_clean(p.get("name")) for p in element.findall(q("participant"))]
    return ", ".join(p for p in pools if p)
