"""A timer worker process for the fault tests: fires due timers on a database at a fixed moment
until it is killed (``python -m tests.timer_worker <database-url> <data-dir> <iso-now>``)."""

from __future__ import annotations

import sys
from datetime import datetime


def main(url: str, data_dir: str, now: str) -> None:
    from bpmn_server.clock import ManualClock
    from bpmn_server.services import Services
    from bpmn_server.settings import Settings
    from bpmn_server.store import Database

    settings = Settings(data_dir=data_dir, database_url=url, secret_key="worker").resolved()
    database = Database(url, pool_size=2)
    services = Services(settings, database=database, clock=ManualClock(datetime.fromisoformat(now)))
    print("ready", flush=True)
    while True:
        services.timers.fire_due(batch=4)


if __name__ == "__main__":
    main(*sys.argv[1:4])
