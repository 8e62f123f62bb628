"""The betsy execution conformance suite, as issue 3 asks to run it:

    .venv/bin/python bench/betsy.py ../shared/conformance/betsy [--backend postgres] [--group events]

One line per failing case with its reason (expected vs produced trace, or the known-failure reason),
then the pass counts and, last, ``N passed, M failed``. The harness itself is conformance/betsy.py
(``python -m conformance.betsy --help``); this is its command-line entry with the folder as argument.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conformance.betsy import main  # noqa: E402  (after the path is set)

if __name__ == "__main__":
    arguments = sys.argv[1:]
    folder = ["--dir", arguments.pop(0)] if arguments and not arguments[0].startswith("-") else []
    sys.exit(main([*folder, "--failures-only", *arguments]))
