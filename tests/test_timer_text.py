"""Timer texts as modelers write them: ISO-8601 dates, durations and cycles, cron, expressions; a
clear error for anything else, never a crash."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bpmn_server.parser.timer_text import IsoDuration, TimerTextError, parse_duration, parse_timer

ARMED = datetime(2026, 1, 31, 8, 0, tzinfo=UTC)  # a Saturday


@pytest.mark.parametrize(
    ("text", "kind", "due"),
    [
        ("2026-12-01T09:00:00Z", "timeDate", datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
        ("2026-12-01T10:00+01:00", "timeDate", datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),
        ("2026-12-01T09:00:00", "timeDate", datetime(2026, 12, 1, 9, 0, tzinfo=UTC)),  # no offset: UTC
        ("2026-12-01", "timeDate", datetime(2026, 12, 1, 0, 0, tzinfo=UTC)),
        ("PT5M", "timeDuration", ARMED + timedelta(minutes=5)),
        ("  PT1H30M\n", "timeDuration", ARMED + timedelta(hours=1, minutes=30)),
        ("P1DT2H", "timeDuration", ARMED + timedelta(days=1, hours=2)),
        ("P2W", "timeDuration", ARMED + timedelta(weeks=2)),
        ("PT0.5S", "timeDuration", ARMED + timedelta(milliseconds=500)),
        ("P1M", "timeDuration", datetime(2026, 2, 28, 8, 0, tzinfo=UTC)),  # a calendar month, clamped
        ('"PT5M"', "timeDuration", ARMED + timedelta(minutes=5)),  # SpiffArena quotes literals
        ("R3/PT4H", "timeCycle", ARMED + timedelta(hours=4)),
        ("R/P1D", "timeCycle", ARMED + timedelta(days=1)),
        ("R2/2026-02-01T09:00:00Z/PT1H", "timeCycle", datetime(2026, 2, 1, 9, 0, tzinfo=UTC)),
        ("0 9 * * MON-FRI", "timeCycle", datetime(2026, 2, 2, 9, 0, tzinfo=UTC)),  # next Monday
        ("0 0 9 * * MON-FRI", "timeCycle", datetime(2026, 2, 2, 9, 0, tzinfo=UTC)),  # seconds first
    ],
)
def test_literal_timers_fire_when_they_say(text, kind, due):
    spec = parse_timer(text, kind)
    assert not spec.is_expression
    assert spec.next_due(ARMED, 0, ARMED) == due


def test_a_bounded_cycle_fires_its_count_from_its_start_without_drift():
    spec = parse_timer("R3/PT4H", "timeCycle")
    late = ARMED + timedelta(hours=5)  # the first firing happened an hour late
    assert [spec.next_due(late, fired, ARMED) for fired in range(4)] == [
        ARMED + timedelta(hours=4), ARMED + timedelta(hours=8), ARMED + timedelta(hours=12), None]


def test_an_unbounded_cycle_fires_a_missed_period_once():
    spec = parse_timer("R/PT1H", "timeCycle")
    after_downtime = ARMED + timedelta(hours=10, minutes=30)
    assert spec.next_due(after_downtime, 2, ARMED) == ARMED + timedelta(hours=11)


def test_an_expression_is_resolved_at_run_time():
    spec = parse_timer("${reminderDelay}", "timeDuration")
    assert spec.is_expression
    with pytest.raises(TimerTextError, match="expression"):
        spec.next_due(ARMED)
    assert spec.resolve("PT5M").next_due(ARMED) == ARMED + timedelta(minutes=5)


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("5 minutes", "timeDuration", "not an ISO-8601 duration"),
        ("300", "timeDuration", "write PT300S for seconds"),
        ("P5H", "timeDuration", "hours, minutes and seconds go after a T"),
        ("PT", "timeDuration", "not an ISO-8601 duration"),
        ("P1.5DT2H", "timeDuration", "only the smallest unit"),
        ("", "timeDuration", "is empty"),
        ("tomorrow", "timeDate", "not an ISO-8601 date-time"),
        ("2026-13-01T09:00:00Z", "timeDate", "not an ISO-8601 date-time"),
        ("PT1H", "timeCycle", "write R/PT1H"),
        ("R3/PT0S", "timeCycle", "longer than zero"),
        ("R3/2026-12-01T10:00Z/2026-12-01T09:00Z", "timeCycle", "ends before it starts"),
        ("0 0 9 * * 1-5", "timeCycle", "numeric day of week is ambiguous"),
        ("61 * * * *", "timeCycle", "not a valid cron expression"),
        ("${delay", "timeDuration", "never closes it"),
        ("P" + "1" * 2000 + "D", "timeDuration", "limit is 1000"),
        ("P99999999Y", "timeDuration", "longer than any timer can wait"),
    ],
)
def test_unreadable_timers_say_what_is_expected(text, kind, message):
    with pytest.raises(TimerTextError, match=message):
        parse_timer(text, kind)


def _read_or_refuse(text: str, kind: str) -> None:
    """Either a timer that knows when it fires (in UTC), or a TimerTextError with a message."""
    try:
        spec = parse_timer(text, kind)
    except TimerTextError as err:
        assert str(err)
        return
    if not spec.is_expression:
        due = spec.next_due(ARMED, 0, ARMED)
        assert due is None or due.tzinfo is not None


@given(st.text(max_size=60), st.sampled_from(["timeDate", "timeDuration", "timeCycle"]))
def test_any_text_is_read_or_refused_with_a_timer_error(text, kind):
    _read_or_refuse(text, kind)


ISO_PIECES = st.lists(st.sampled_from(["P", "T", "R", "/", "1", "5", "0", "Y", "M", "W", "D", "H", "S", ".", ",",
                                       "-", ":", "Z", "+", "2026-12-01", "T09:00:00", " ", "*", "MON"]),
                      max_size=12).map("".join)


@given(ISO_PIECES, st.sampled_from(["timeDate", "timeDuration", "timeCycle"]))
def test_near_miss_iso_texts_are_read_or_refused_with_a_timer_error(text, kind):
    _read_or_refuse(text, kind)


@given(
    st.builds(
        IsoDuration,
        years=st.integers(0, 50), months=st.integers(0, 24),
        weeks=st.integers(0, 10).map(Decimal), days=st.integers(0, 400).map(Decimal),
        hours=st.integers(0, 100).map(Decimal), minutes=st.integers(0, 100).map(Decimal),
        seconds=st.decimals(0, 1000, places=3),
    )
)
def test_a_duration_reads_back_from_its_own_text(duration):
    again = parse_duration(str(duration))
    assert again.add_to(ARMED) == duration.add_to(ARMED)
    assert again.add_to(ARMED) >= ARMED
