"""Timer texts as BPMN tools write them: ISO-8601 dates, durations and repeating intervals,
cron cycles, and ``${...}``/``#{...}`` expressions that are evaluated later at run time.

The one rule (see docs/validation-rules.md):

* ``timeDate``: an ISO-8601 date or date-time (``2026-12-01T09:00:00Z``, ``2026-12-01T10:00+01:00``);
  a date-time **without** an offset is read as UTC, a bare date as midnight UTC.
* ``timeDuration``: an ISO-8601 duration (``PT5M``, ``P1DT2H``, ``P2W``).
* ``timeCycle``: an ISO-8601 repeating interval (``R3/PT1H``, ``R/P1D``, ``R5/<start>/PT1H``,
  ``R3/PT10M/<end>``, ``R2/<start>/<end>``) or a cron expression: 5 fields (minute first) or
  6/7 fields Quartz/Spring style (seconds first, optional year); ``Rn/<cron>`` bounds a cron cycle.
  Cron times are UTC.
* Any text containing ``${...}`` or ``#{...}`` is an expression, evaluated against the instance
  data at run time; the result is then parsed with the same rules.
* A literal wrapped in quotes (``"PT5M"``, as SpiffArena writes them) is read without the quotes.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Literal

from croniter import croniter

TimerKind = Literal["timeDate", "timeDuration", "timeCycle"]
TIMER_KINDS: tuple[str, ...] = ("timeDate", "timeDuration", "timeCycle")

_MAX_TEXT = 1000
_DURATION = re.compile(
    r"P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+(?:[.,]\d+)?)W)?"
    r"(?:(?P<days>\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+(?:[.,]\d+)?)H)?(?:(?P<minutes>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:[.,]\d+)?)S)?)?",
)
_REPEAT = re.compile(r"R(?P<count>\d*)")
_EXPRESSION = re.compile(r"[$#]\{[^{}]*\}")
_CRON_DIGIT_WEEKDAY = re.compile(r"(?:^|[,\-/])\d")
_REFERENCE = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST_ARMING = datetime(2200, 1, 1, tzinfo=UTC)  # a duration must not overflow from here


class TimerTextError(ValueError):
    """A timer text that cannot be read; the message says what was expected."""


@dataclass(frozen=True)
class IsoDuration:
    """An ISO-8601 duration kept component by component, so that ``P1M`` stays a calendar month."""

    years: int = 0
    months: int = 0
    weeks: Decimal = Decimal(0)
    days: Decimal = Decimal(0)
    hours: Decimal = Decimal(0)
    minutes: Decimal = Decimal(0)
    seconds: Decimal = Decimal(0)

    def __str__(self) -> str:
        date_part = "".join(
            f"{_plain(value)}{unit}"
            for value, unit in ((self.years, "Y"), (self.months, "M"), (self.weeks, "W"), (self.days, "D"))
            if value
        )
        time_part = "".join(
            f"{_plain(value)}{unit}"
            for value, unit in ((self.hours, "H"), (self.minutes, "M"), (self.seconds, "S"))
            if value
        )
        if not date_part and not time_part:
            return "PT0S"
        return "P" + date_part + (f"T{time_part}" if time_part else "")

    @property
    def is_zero(self) -> bool:
        return not any(
            (self.years, self.months, self.weeks, self.days, self.hours, self.minutes, self.seconds)
        )

    def times(self, factor: int) -> IsoDuration:
        """This duration ``factor`` times over (component-wise, so months stay calendar months)."""
        return IsoDuration(
            self.years * factor,
            self.months * factor,
            self.weeks * factor,
            self.days * factor,
            self.hours * factor,
            self.minutes * factor,
            self.seconds * factor,
        )

    def add_to(self, moment: datetime) -> datetime:
        """``moment`` plus this duration: calendar years/months first (day clamped), then exact time."""
        total_months = self.years * 12 + self.months
        if total_months:
            month_index = moment.month - 1 + total_months
            year = moment.year + month_index // 12
            month = month_index % 12 + 1
            if not 1 <= year <= 9999:
                raise OverflowError("date beyond year 9999")
            day = min(moment.day, calendar.monthrange(year, month)[1])
            moment = moment.replace(year=year, month=month, day=day)
        exact = timedelta(
            weeks=float(self.weeks),
            days=float(self.days),
            hours=float(self.hours),
            minutes=float(self.minutes),
            seconds=float(self.seconds),
        )
        return moment + exact


@dataclass(frozen=True)
class TimerSpec:
    """A parsed timer text; ``next_due`` says when it fires next (always a UTC-aware datetime)."""

    kind: TimerKind
    text: str
    is_expression: bool = False
    repetitions: int | None = 1
    date: datetime | None = None
    duration: IsoDuration | None = None
    end: datetime | None = None
    cron: str | None = None

    def resolve(self, value: str) -> TimerSpec:
        """The literal timer an expression evaluated to (``value`` is parsed with the same rules)."""
        return parse_timer(value, self.kind)

    def next_due(
        self, after: datetime, fired_count: int = 0, started_at: datetime | None = None
    ) -> datetime | None:
        """When the timer fires next, having fired ``fired_count`` times; ``None`` once it is done.

        ``after`` is now: the moment the timer is armed or has just fired. ``started_at`` is when it
        was first armed; durations and cycles without a start of their own count from it, so a cycle
        does not drift (without it they count from ``after``). A date, a duration and each repetition
        of a bounded cycle (``R3/...``) fire exactly once, even when overdue (a late reminder is never
        lost). Unbounded cycles (``R/...``, cron) return their first time strictly after ``after``, so
        a server that was down fires a missed cycle once, not once per missed period. Naive
        datetimes are read as UTC.
        """
        if self.is_expression:
            raise TimerTextError(
                f"'{self.text}' is an expression: evaluate it against the instance data and "
                "call resolve() with the result first"
            )
        after = as_utc(after)
        started = as_utc(started_at) if started_at is not None else None
        if self.repetitions is not None and fired_count >= self.repetitions:
            return None
        try:
            return self._next(after, fired_count, started)
        except OverflowError:
            return None

    def _next(self, after: datetime, fired_count: int, started: datetime | None) -> datetime | None:
        if self.kind == "timeDate":
            return self.date
        if self.kind == "timeDuration":
            assert self.duration is not None
            return self.duration.add_to(started or after)
        if self.cron is not None:
            due = _cron_next(self.cron, after)
            return due if self.end is None or due <= self.end else None
        assert self.duration is not None
        if self.date is not None:
            anchor, first_index = self.date, 0  # R/<start>/<period>: the first firing is at start
        elif started is not None:
            anchor, first_index = started, 1
        else:
            anchor, first_index = after, 1
            fired_count = 0
        index = first_index + fired_count
        due = self.duration.times(index).add_to(anchor)
        if self.repetitions is None and due <= after:
            # unbounded cycle: skip the periods missed while nobody was looking
            period_seconds = (self.duration.add_to(_REFERENCE) - _REFERENCE).total_seconds()
            skipped = int((after - due).total_seconds() // period_seconds)
            index += max(skipped - 1, 0)
            due = self.duration.times(index).add_to(anchor)
            while due <= after:
                index += 1
                due = self.duration.times(index).add_to(anchor)
        if self.end is not None and due > self.end:
            return None
        return due


def as_utc(moment: datetime) -> datetime:
    """The same instant as a UTC-aware datetime; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_timer(text: str, kind: TimerKind) -> TimerSpec:
    """Read a timer text of the given BPMN kind, or raise ``TimerTextError`` saying what is wrong."""
    if kind not in TIMER_KINDS:
        raise TimerTextError(f"unknown timer kind '{kind}'; expected one of {', '.join(TIMER_KINDS)}")
    if not isinstance(text, str):
        raise TimerTextError(f"a timer text must be a string, not {type(text).__name__}")
    stripped = text.strip()
    if len(stripped) > _MAX_TEXT:
        raise TimerTextError(f"the timer text is {len(stripped)} characters long; the limit is {_MAX_TEXT}")
    if not stripped:
        raise TimerTextError(f"the {kind} is empty; {_EXPECTED[kind]}")
    if _is_expression(stripped):
        return TimerSpec(kind=kind, text=stripped, is_expression=True, repetitions=None)
    literal = _unquote(stripped)
    if kind == "timeDate":
        return TimerSpec(kind=kind, text=stripped, date=parse_date_time(literal))
    if kind == "timeDuration":
        return TimerSpec(kind=kind, text=stripped, duration=parse_duration(literal))
    return _parse_cycle(literal, stripped)


def parse_duration(text: str) -> IsoDuration:
    """An ISO-8601 duration such as ``PT5M``, ``P1DT2H`` or ``P2W``."""
    match = _DURATION.fullmatch(text.strip().upper()) if text.strip().upper().startswith("P") else None
    if match is None or text.strip().upper().endswith("T"):
        hint = ""
        if re.fullmatch(r"\d+(?:\.\d+)?", text.strip()):
            hint = f" (a bare number has no unit; write PT{text.strip()}S for seconds or PT{text.strip()}M for minutes)"
        elif re.fullmatch(
            r"P?T?\d+[HMS]", text.strip(), re.IGNORECASE
        ) and not text.strip().upper().startswith("PT"):
            hint = " (hours, minutes and seconds go after a T: PT5M, not P5M, which is five months)"
        raise TimerTextError(
            f"'{text.strip()}' is not an ISO-8601 duration{hint}; expected e.g. PT5M, PT1H30M, P1DT2H or P2W"
        )
    parts = match.groupdict()
    fractions = [name for name, value in parts.items() if value and re.search(r"[.,]", value)]
    given = [name for name, value in parts.items() if value is not None]
    if fractions and fractions[-1] != given[-1]:
        raise TimerTextError(f"'{text.strip()}': only the smallest unit of a duration may have a fraction")
    try:
        values = {
            name: Decimal(value.replace(",", ".")) if value else Decimal(0) for name, value in parts.items()
        }
    except InvalidOperation:  # pragma: no cover - the pattern admits only digits
        raise TimerTextError(f"'{text.strip()}' is not an ISO-8601 duration") from None
    duration = IsoDuration(
        years=int(values["years"]),
        months=int(values["months"]),
        weeks=values["weeks"],
        days=values["days"],
        hours=values["hours"],
        minutes=values["minutes"],
        seconds=values["seconds"],
    )
    try:
        duration.add_to(_LATEST_ARMING)
    except (OverflowError, ValueError):
        raise TimerTextError(f"'{text.strip()}' is longer than any timer can wait") from None
    return duration


def parse_date_time(text: str) -> datetime:
    """An ISO-8601 date or date-time as UTC-aware datetime; without an offset it is read as UTC."""
    value = text.strip()
    if not re.match(r"\d{4}-?\d{2}", value):
        raise TimerTextError(
            f"'{value}' is not an ISO-8601 date-time; expected e.g. 2026-12-01T09:00:00Z "
            "or 2026-12-01T10:00:00+01:00"
        )
    normalized = value[:-1] + "+00:00" if value.endswith(("z", "Z")) else value
    try:
        parsed = datetime.fromisoformat(normalized)
    except ValueError as err:
        raise TimerTextError(
            f"'{value}' is not an ISO-8601 date-time ({err}); expected e.g. 2026-12-01T09:00:00Z"
        ) from None
    try:
        return as_utc(parsed)
    except OverflowError:
        raise TimerTextError(f"'{value}' is outside the supported range of dates") from None


_EXPECTED = {
    "timeDate": "expected an ISO-8601 date-time such as 2026-12-01T09:00:00Z",
    "timeDuration": "expected an ISO-8601 duration such as PT5M or P1DT2H",
    "timeCycle": "expected a repeating interval such as R3/PT1H or R/P1D, or a cron expression such as "
    "0 0 9 * * MON-FRI",
}


def _is_expression(text: str) -> bool:
    if "${" not in text and "#{" not in text:
        return False
    if not _EXPRESSION.search(text):
        raise TimerTextError(f"'{text}' opens an expression with ${{ or #{{ but never closes it with }}")
    return True


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1].strip()
    return text


def _parse_cycle(literal: str, original: str) -> TimerSpec:
    if not literal.upper().startswith("R"):
        if len(literal.split()) >= 5:
            return TimerSpec(kind="timeCycle", text=original, repetitions=None, cron=_parse_cron(literal))
        hint = ""
        if literal.upper().startswith("P"):
            hint = (
                f" (to repeat every {literal} forever write R/{literal}; R3/{literal} repeats it three times)"
            )
        raise TimerTextError(f"'{literal}' is not a timer cycle{hint}; {_EXPECTED['timeCycle']}")
    head, _, rest = literal.partition("/")
    match = _REPEAT.fullmatch(head.upper())
    if match is None or not rest:
        raise TimerTextError(f"'{literal}' is not a repeating interval; {_EXPECTED['timeCycle']}")
    repetitions = int(match["count"]) if match["count"] else None
    if repetitions is not None and repetitions > 1_000_000:
        raise TimerTextError(f"'{literal}' repeats {repetitions} times; use R/ for an unbounded cycle")
    parts = rest.split("/")
    if len(parts) == 1 and len(parts[0].split()) >= 5:
        return TimerSpec(kind="timeCycle", text=original, repetitions=repetitions, cron=_parse_cron(parts[0]))
    if len(parts) > 2:
        raise TimerTextError(
            f"'{literal}' has too many parts; expected R<n>/<duration>, R<n>/<start>/<duration> "
            "or R<n>/<duration>/<end>"
        )
    spec = TimerSpec(kind="timeCycle", text=original, repetitions=repetitions)
    if len(parts) == 1:
        duration = parse_duration(parts[0])
        _require_positive(duration, literal)
        return replace(spec, duration=duration)
    first, second = (part.strip() for part in parts)
    if first.upper().startswith("P"):
        duration = parse_duration(first)
        _require_positive(duration, literal)
        return replace(spec, duration=duration, end=parse_date_time(second))
    start = parse_date_time(first)
    if second.upper().startswith("P"):
        duration = parse_duration(second)
        _require_positive(duration, literal)
        return replace(spec, date=start, duration=duration)
    end = parse_date_time(second)
    if end <= start:
        raise TimerTextError(f"'{literal}': the interval ends before it starts")
    seconds = Decimal(str((end - start).total_seconds()))
    return replace(spec, date=start, duration=IsoDuration(seconds=seconds))


def _require_positive(duration: IsoDuration, literal: str) -> None:
    if duration.add_to(_REFERENCE) - _REFERENCE < timedelta(milliseconds=1):
        raise TimerTextError(f"'{literal}': a cycle needs a period longer than zero")


def _parse_cron(text: str) -> str:
    """A cron expression in croniter's form (seconds first when there are 6 or 7 fields)."""
    fields = text.split()
    if len(fields) not in (5, 6, 7):
        raise TimerTextError(
            f"'{text}' has {len(fields)} fields; a cron expression has 5 (minute hour day month weekday) "
            "or 6-7 (second minute hour day month weekday [year])"
        )
    if len(fields) >= 6:
        weekday = fields[5]
        if any(_CRON_DIGIT_WEEKDAY.search(part.split("#")[0]) for part in weekday.split(",")):
            raise TimerTextError(
                f"'{text}': a numeric day of week is ambiguous in a 6-field cron (Quartz counts 1 = Sunday, "
                "Spring 1 = Monday); write the day names, e.g. MON-FRI"
            )
    normalized = " ".join(fields)
    try:
        croniter(normalized, _REFERENCE, second_at_beginning=len(fields) >= 6).get_next(datetime)
    except Exception as err:  # croniter raises several types for bad or never-matching expressions
        raise TimerTextError(f"'{text}' is not a valid cron expression: {err}") from None
    return normalized


def _cron_next(expression: str, after: datetime) -> datetime:
    fields = expression.split()
    iterator = croniter(expression, after, second_at_beginning=len(fields) >= 6)
    return as_utc(iterator.get_next(datetime))


def _plain(value: int | Decimal) -> str:
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return text
    return str(value)
