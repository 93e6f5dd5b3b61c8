"""When things run: the schedules and holidays, read in the configured time zone. Pure: ``now`` is passed in.

An 08:00 JST start is 23:00 UTC the day before, so every decision converts ``now`` into the zone first: the day
that counts as a holiday is the day on the wall clock in Tokyo, never the UTC date (a scheduler that checks the
UTC date skips the wrong mornings). The suspend *window* — when a database that AWS restarts on its own after
seven days must be stopped again — runs from the latest ``suspend_at`` to the next ``resume_at`` that is not a
holiday, so nights, weekends (the crons do not fire on them) and holidays are all inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import cronsim
import holidays

from pipeline.suspend.config import ExtraHoliday, Schedule, SuspendConfig

__all__ = ["Calendar", "Window"]

# How far the window looks back and ahead for a schedule's firings: a year of daily crons, with room to spare.
_HORIZON = timedelta(days=400)


@dataclass(frozen=True)
class Window:
    """Whether ``now`` is inside the suspend window, and why (for reports)."""

    inside: bool
    since: datetime | None  # the suspend that opened it (inside) or the resume that closed it (outside)
    until: datetime | None  # the next resume (inside) or the next suspend (outside)
    reason: str


class Calendar:
    """Holidays and the two schedules of one configuration."""

    def __init__(self, config: SuspendConfig, schedule: Schedule | None = None) -> None:
        schedule = schedule or config.schedule()
        self.schedule = schedule.name
        self.zone = ZoneInfo(schedule.timezone)
        self.suspend_at = schedule.suspend_at
        self.resume_at = schedule.resume_at
        self._extra: tuple[ExtraHoliday, ...] = config.extra_holidays
        self._national: holidays.HolidayBase | None = (
            holidays.country_holidays(schedule.holidays, language=config.holiday_language)
            if schedule.holidays
            else None
        )

    def local(self, now: datetime) -> datetime:
        """``now`` on the zone's wall clock (a naive ``now`` already is a wall-clock time in the zone)."""
        if now.tzinfo is None:
            return now.replace(tzinfo=self.zone)
        return now.astimezone(self.zone)

    def holiday(self, day: date) -> str | None:
        """The holiday's name on ``day`` (custom days first), or None."""
        for extra in self._extra:
            if extra.matches(day):
                return extra.name
        if self._national is not None:
            name = self._national.get(day)
            if name:
                return str(name)
        return None

    def holiday_at(self, now: datetime) -> str | None:
        """The holiday on the zone's calendar day at ``now``."""
        return self.holiday(self.local(now).date())

    def upcoming(self, now: datetime, days: int = 30) -> list[tuple[date, str]]:
        """Holidays from today (in the zone) over the next ``days`` days."""
        today = self.local(now).date()
        found = []
        for offset in range(days + 1):
            day = today + timedelta(days=offset)
            name = self.holiday(day)
            if name:
                found.append((day, name))
        return found

    def window(self, now: datetime) -> Window:
        """Inside when the latest suspend is newer than the latest resume that did run (not on a holiday)."""
        local = self.local(now)
        suspended = self._latest(self.suspend_at, local, skip_holidays=False)
        resumed = self._latest(self.resume_at, local, skip_holidays=True)
        if suspended is not None and (resumed is None or suspended > resumed):
            until = self._next(self.resume_at, local, skip_holidays=True)
            when = f"resumes {self.format(until)}" if until else "no resume scheduled"
            reason = f"inside the suspend window: suspended {self.format(suspended)}, {when}"
            return Window(True, suspended, until, reason)
        following = self._next(self.suspend_at, local, skip_holidays=False)
        since = f"resumed {self.format(resumed)}" if resumed else "never suspended"
        when = f"next suspend {self.format(following)}" if following else "no suspend scheduled"
        return Window(False, resumed, following, f"outside the suspend window: {since}, {when}")

    def fired(self, since: datetime, now: datetime) -> str | None:
        """``suspend`` or ``start`` when that schedule fired in (since, now] (a resume only on a working day; the
        later one when both did), else None: what a tick is due to do."""
        local = self.local(now)
        suspended = self._latest(self.suspend_at, local, skip_holidays=False)
        resumed = self._latest(self.resume_at, local, skip_holidays=True)
        start = self.local(since)
        due = [(m, a) for m, a in ((suspended, "suspend"), (resumed, "start")) if m is not None and start < m]
        return max(due)[1] if due else None

    def stopped_hours(self, since: datetime, until: datetime) -> float:
        """Hours of (since, until] inside the suspend window: what the schedule keeps a resource stopped."""
        start, end = self.local(since), self.local(until)
        total, moment = 0.0, start
        while moment < end:
            window = self.window(moment)
            following = window.until if window.until is not None and window.until > moment else end
            following = min(following, end)
            if window.inside:
                total += (following - moment).total_seconds() / 3600
            if following <= moment:  # pragma: no cover - a schedule that never fires again
                break
            moment = following
        return total

    def format(self, moment: datetime) -> str:
        """``2026-11-20 21:00 JST (Fri)``, and the holiday's name when the day is one."""
        local = self.local(moment)
        text = f"{local:%Y-%m-%d %H:%M} {local.tzname()} ({local:%a})"
        name = self.holiday(local.date())
        return f"{text}, {name}" if name else text

    def _latest(self, expression: str, local: datetime, *, skip_holidays: bool) -> datetime | None:
        # cronsim is strict in both directions; one second on makes a firing at exactly ``now`` count.
        start = local.replace(microsecond=0) + timedelta(seconds=1)
        for moment in cronsim.CronSim(expression, start, reverse=True):
            if local - moment > _HORIZON:
                return None
            if not (skip_holidays and self.holiday(moment.date())):
                return moment
        return None  # pragma: no cover - CronSim iterates forever

    def _next(self, expression: str, local: datetime, *, skip_holidays: bool) -> datetime | None:
        for moment in cronsim.CronSim(expression, local):
            if moment - local > _HORIZON:
                return None
            if not (skip_holidays and self.holiday(moment.date())):
                return moment
        return None  # pragma: no cover - CronSim iterates forever
