"""Benchmark: publishing SOP handbooks (parse + step model + SVG + HTML) against merely parsing the
same documents with lxml, for the 21 MIWG reference models and a generated 500-step model.

    .venv/bin/python bench/sop.py [--rounds N] [--miwg DIR]

Ends with ``RESULT sop ratio=<sop time / lxml parse time over the MIWG set> ...``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from lxml import etree

from bpmn_server.parser.document import BpmnDocument
from bpmn_server.sop.html import render_sop_html

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MIWG = ROOT.parent / "shared" / "conformance" / "miwg-reference"


def generated_model(steps: int = 500) -> bytes:
    """A process of ``steps`` user tasks in a row (every 10th a decision that may loop back), with layout."""
    nodes = ['<bpmn:startEvent id="start"/>']
    flows = []
    shapes = ['<bpmndi:BPMNShape id="start_di" bpmnElement="start"><dc:Bounds x="0" y="22" width="36" height="36"/>'
              "</bpmndi:BPMNShape>"]
    edges = []
    previous = "start"
    for index in range(1, steps + 1):
        node = f"t{index}"
        gateway = index % 10 == 0
        tag = "bpmn:exclusiveGateway" if gateway else "bpmn:userTask"
        extra = f' default="f{index}_on"' if gateway else ' camunda:candidateGroups="clerks"'
        nodes.append(f'<{tag} id="{node}" name="Step {index}"{extra}>'
                     f"<bpmn:documentation>Do **step {index}** carefully.</bpmn:documentation></{tag}>")
        flows.append(f'<bpmn:sequenceFlow id="f{index}" sourceRef="{previous}" targetRef="{node}"/>')
        x, y = (index % 25) * 150, (index // 25) * 120
        width, height = (50, 50) if gateway else (100, 80)
        shapes.append(f'<bpmndi:BPMNShape id="{node}_di" bpmnElement="{node}"><dc:Bounds x="{x}" y="{y}" '
                      f'width="{width}" height="{height}"/></bpmndi:BPMNShape>')
        edges.append(f'<bpmndi:BPMNEdge id="f{index}_di" bpmnElement="f{index}"><di:waypoint x="{x - 50}" y="{y + 40}"/>'
                     f'<di:waypoint x="{x}" y="{y + 40}"/></bpmndi:BPMNEdge>')
        if gateway:
            flows.append(f'<bpmn:sequenceFlow id="f{index}_back" name="redo" sourceRef="{node}" '
                         f'targetRef="t{index - 9}"><bpmn:conditionExpression>${{redo_{index}}}'
                         "</bpmn:conditionExpression></bpmn:sequenceFlow>")
        previous = node
    nodes.append('<bpmn:endEvent id="end"/>')
    flows.append(f'<bpmn:sequenceFlow id="f_end" sourceRef="{previous}" targetRef="end"/>')
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" '
        'xmlns:di="http://www.omg.org/spec/DD/20100524/DI" xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
        'id="defs" targetNamespace="bench">'
        '<bpmn:process id="big" name="Generated" isExecutable="true">' + "".join(nodes) + "".join(flows)
        + '</bpmn:process><bpmndi:BPMNDiagram id="d"><bpmndi:BPMNPlane id="p" bpmnElement="big">'
        + "".join(shapes) + "".join(edges) + "</bpmndi:BPMNPlane></bpmndi:BPMNDiagram></bpmn:definitions>"
    ).encode("utf-8")


def timed(function, rounds: int) -> float:
    """Seconds per round (best of three batches, to damp noise on a shared machine)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(rounds):
            function()
        best = min(best, (time.perf_counter() - started) / rounds)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per batch over the MIWG set")
    parser.add_argument("--miwg", type=Path, default=DEFAULT_MIWG)
    args = parser.parse_args()
    sources = [path.read_bytes() for path in sorted(args.miwg.glob("*.bpmn"))]
    if not sources:
        raise SystemExit(f"no MIWG models in {args.miwg}")

    def parse_all() -> None:
        for source in sources:
            etree.fromstring(source)

    def publish_all() -> None:
        for source in sources:
            render_sop_html(BpmnDocument.load(source))

    parse_time = timed(parse_all, args.rounds)
    sop_time = timed(publish_all, args.rounds)
    per_second = len(sources) / sop_time
    print(f"MIWG set: {len(sources)} models, {sum(map(len, sources)) / 1024:.0f} KiB")
    print(f"  lxml parse only : {parse_time * 1000:8.2f} ms per set")
    print(f"  publish SOP     : {sop_time * 1000:8.2f} ms per set ({per_second:.0f} SOPs/s)")
    big = generated_model(500)
    big_parse = timed(lambda: etree.fromstring(big), 3)
    big_sop = timed(lambda: render_sop_html(BpmnDocument.load(big)), 1)
    print(f"generated 500-step model: {len(big) / 1024:.0f} KiB")
    print(f"  lxml parse only : {big_parse * 1000:8.2f} ms")
    print(f"  publish SOP     : {big_sop * 1000:8.2f} ms (x{big_sop / big_parse:.0f})")
    print(f"RESULT sop ratio={sop_time / parse_time:.1f} sops_per_s={per_second:.0f} "
          f"big_ms={big_sop * 1000:.0f} big_ratio={big_sop / big_parse:.0f}")


if __name__ == "__main__":
    main()
