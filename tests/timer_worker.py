"""A timer worker process for the fault and cluster tests: a separate Python process that fires due
timers on a database at a fixed moment (a ManualClock), the way `bpmn-server worker` does on each pass.

    python -m tests.timer_worker <database-url> <data-dir> <iso-now> [--until-done | --hold-after N] [--batch N]

It prints ``ready`` once it is connected, then

- with ``--hold-after N``: fires due timers (``fire_due``) until N have fired, then, about to fire the
  next one — its batch claimed, their leases held — prints ``holding`` and stops there until it is
  killed: the fault test ``kill -9``s it at that moment;
- with ``--until-done``: waits for a line on stdin (so several workers start together), makes one
  ``fire_due`` pass — which goes on claiming batches until nothing due is left to claim — prints how
  many timers it fired and exits.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("data_dir")
    parser.add_argument("now")
    parser.add_argument("--until-done", action="store_true")
    parser.add_argument("--hold-after", type=int)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args(argv)

    from bpmn_server.clock import ManualClock
    from bpmn_server.services import Services
    from bpmn_server.settings import Settings
    from bpmn_server.store import Database

    settings = Settings(data_dir=args.data_dir, database_url=args.url, secret_key="worker").resolved()
    database = Database(args.url, pool_size=2)
    services = Services(settings, database=database, clock=ManualClock(datetime.fromisoformat(args.now)))
    print("ready", flush=True)
    if args.until_done:
        input()
        report = services.timers.fire_due(batch=args.batch)
        print(report.fired, report.skipped, report.retried, report.failed, flush=True)
        database.dispose()
        return
    fire = services.timers._fire
    fired = 0

    def fire_or_hold(claim, now):
        """The fault injection point: past ``--hold-after`` firings, stop in the middle of a batch."""
        nonlocal fired
        if fired >= args.hold_after:
            print("holding", flush=True)
            sys.stdin.readline()  # never answered: the test kills this process here
        report = fire(claim, now)
        fired += report.fired
        return report

    services.timers._fire = fire_or_hold
    services.timers.fire_due(batch=args.batch)


if __name__ == "__main__":
    main()
