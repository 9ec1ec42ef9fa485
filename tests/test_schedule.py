"""Schedule config models, trigger math and catch-up decisions (no daemon running)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from podium.jobs import build_plan
from podium.jobs._adapter import fingerprint, make_trigger, missed_fire
from podium.orchestrator import load_config
from podium.pipeline import ConfigError, Schedule, parse_duration

from .daemon_helpers import pipeline_toml, write_config

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def test_durations() -> None:
    assert parse_duration(30) == timedelta(seconds=30)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("250ms") == timedelta(milliseconds=250)
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("5 minutes")


def plan_for(tmp_path: Path, schedule: str, scheduler: str = "") -> object:
    path = write_config(
        tmp_path / "config.toml",
        database=f"sqlite:///{tmp_path / 'p.db'}",
        base_url="http://127.0.0.1:9",
        pipelines=pipeline_toml("p", schedule),
        scheduler=scheduler,
    )
    return build_plan(load_config(path))


def test_schedule_key_does_not_break_runs_and_is_validated(tmp_path: Path) -> None:
    plan = plan_for(tmp_path, '{ interval = "5m", overlap = "queue", timeout = "90s" }')
    schedule = plan.schedules["p"]  # type: ignore[attr-defined]
    assert schedule.interval == timedelta(minutes=5)
    assert plan.budget("p") == 90  # type: ignore[attr-defined]
    assert plan.config.pipeline("p").name == "p"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("schedule", "scheduler", "message"),
    [
        ('{ interval = "5m", cron = "* * * * *" }', "", "exactly one of 'cron' or 'interval'"),
        ('{ cron = "* * *" }', "", "5 fields"),
        ('{ interval = "5m", timezone = "Mars/Base" }', "", "unknown time zone"),
        ('{ interval = "5m", overlap = "maybe" }', "", "pipelines.p.schedule.overlap"),
        ('{ interval = "5m", every = 3 }', "", "unknown key 'every'"),
        ('{ interval = "5m" }', 'url = "sqlite:///x.db"', "must be a PostgreSQL URL"),
        ('{ interval = "5m" }', "colour = 1", "scheduler.colour"),
    ],
)
def test_mistakes_name_the_key(tmp_path: Path, schedule: str, scheduler: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan_for(tmp_path, schedule, scheduler)


def test_interval_never_fires_on_add_and_keeps_start_cadence() -> None:
    now = T0 + timedelta(seconds=7)
    plain = make_trigger(Schedule(interval="10s"), now)
    assert plain.next() == now + timedelta(seconds=10)  # not `now` (pitfall 6)
    anchored = make_trigger(Schedule(interval="10s", start=T0), now)
    assert anchored.next() == T0 + timedelta(seconds=10)


def test_cron_with_seconds_and_time_zone() -> None:
    trigger = make_trigger(Schedule(cron="*/15 * * * * *"), T0 + timedelta(seconds=1))
    assert trigger.next() == T0 + timedelta(seconds=15)
    berlin = make_trigger(Schedule(cron="0 9 * * *", timezone="Europe/Berlin"), T0 + MINUTE)
    assert berlin.next() == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)  # 09:00 CET


def test_missed_fire_from_run_history() -> None:
    every = Schedule(interval="10s", catch_up="once")
    assert missed_fire(every, T0, T0 + timedelta(seconds=9)) is None
    assert missed_fire(every, T0, T0 + timedelta(seconds=35)) == T0 + timedelta(seconds=30)
    hourly = Schedule(cron="0 * * * *", catch_up="once")
    assert missed_fire(hourly, T0, T0 + timedelta(minutes=59)) is None
    assert missed_fire(hourly, T0, T0 + timedelta(hours=3, minutes=5)) == T0 + timedelta(hours=3)


def test_fingerprint_covers_the_trigger_only() -> None:
    base = Schedule(interval="10s")
    assert fingerprint(base) == fingerprint(Schedule(interval="10s", overlap="parallel"))
    assert fingerprint(base) != fingerprint(Schedule(interval="11s"))
    assert fingerprint(base) != fingerprint(Schedule(interval="10s", paused=True))
