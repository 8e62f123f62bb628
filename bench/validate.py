"""Benchmark: load + validate every MIWG reference model N times, against bare lxml in the same process.

    .venv/bin/python bench/validate.py [--rounds N] [--dir PATH]

Measured per round over the whole set (best of N interleaved rounds, so other work on the machine disturbs less):

* ``validate``      BpmnDocument.load + validate(): XSD, semantic rules and the engine check (what
                    ``bpmn-server validate`` and every deploy do);
* ``model only``    the same with ``engine=False`` (XSD + semantic rules);
* ``bare xsd``      lxml.etree.fromstring + the same compiled XMLSchema.validate — the baseline;
* ``bare parse``    lxml.etree.fromstring alone.

The last line is ``RESULT validate ratio=<validate / bare xsd> ...``; ``ratio_parse`` is validate / bare parse.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from lxml import etree

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bpmn_server.parser.document import BpmnDocument  # noqa: E402
from bpmn_server.parser.validation import validate  # noqa: E402
from bpmn_server.parser.xsd import bpmn_schema  # noqa: E402

DEFAULT_DIR = Path(os.environ.get("BPMN_SERVER_CONFORMANCE_DIR", ROOT.parent / "shared" / "conformance")) / (
    "miwg-reference"
)


def best_rounds(work: dict[str, Callable[[], None]], rounds: int) -> dict[str, float]:
    """The fastest of ``rounds`` runs of each function, in seconds; the functions take turns in every
    round, so a burst of load on the machine slows all of them alike."""
    best = dict.fromkeys(work, float("inf"))
    for _ in range(rounds):
        for label, function in work.items():
            started = time.perf_counter()
            function()
            best[label] = min(best[label], time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    args = parser.parse_args()
    files = sorted(args.dir.glob("*.bpmn"))
    if not files:
        sys.exit(f"no BPMN files in {args.dir}")
    sources = [(path.name, path.read_bytes()) for path in files]
    schema = bpmn_schema()  # compiled once, outside the timings, as in a running server
    xml_parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)

    def full() -> None:
        for name, source in sources:
            validate(BpmnDocument.load(source, name))

    def model_only() -> None:
        for name, source in sources:
            validate(BpmnDocument.load(source, name), engine=False)

    def bare_xsd() -> None:
        for _, source in sources:
            schema.validate(etree.fromstring(source, xml_parser))

    def bare_parse() -> None:
        for _, source in sources:
            etree.fromstring(source, xml_parser)

    full()  # warm up imports and caches
    total_bytes = sum(len(source) for _, source in sources)
    timings = best_rounds(
        {"validate": full, "model only": model_only, "bare xsd": bare_xsd, "bare parse": bare_parse}, args.rounds
    )
    print(f"{len(sources)} files, {total_bytes / 1024:.0f} KiB, best of {args.rounds} rounds")
    for label, seconds in timings.items():
        print(f"  {label:<11} {seconds * 1000:8.2f} ms/round  {len(sources) / seconds:8.0f} files/s")
    ratio = timings["validate"] / timings["bare xsd"]
    ratio_model = timings["model only"] / timings["bare xsd"]
    ratio_parse = timings["validate"] / timings["bare parse"]
    print(
        f"RESULT validate ratio={ratio:.2f} files_per_s={len(sources) / timings['validate']:.0f} "
        f"ratio_model_only={ratio_model:.2f} ratio_parse={ratio_parse:.1f} files={len(sources)} rounds={args.rounds}"
    )


if __name__ == "__main__":
    main()
