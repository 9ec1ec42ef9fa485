"""The pure parts of monitoring: the incident state machine, rules from attachments,
maintenance windows, missed-fire arithmetic, response-time percentiles."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from podium.jobs import build_plan
from podium.jobs._slots import overdue
from podium.jobs._watchdog import Watchdog
from podium.orchestrator import load_config, open_database
from podium.orchestrator.alerts import (
    AlertConfig,
    AlertRule,
    AlertState,
    MaintenanceWindow,
    Outcome,
    advance,
    latency,
    remind,
    rules_for,
)
from podium.orchestrator.storage import Monitoring
from podium.pipeline import ConfigError, Pipeline, Schedule

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def rule(**changes: object) -> AlertRule:
    fields: dict[str, object] = {
        "alert": "ops", "subject": "check:p/c", "label": "check p/c", "pipeline": "p",
        "check": "c", "on": frozenset(), "failure_threshold": 3, "success_threshold": 2,
        "send_on_resolved": True, "repeat": None, "description": "",
    }  # fmt: skip
    fields.update(changes)
    return AlertRule(**fields)  # type: ignore[arg-type]


def feed(state: AlertState, pattern: str, r: AlertRule) -> list[str]:
    """``pattern``: one character per outcome, ``.`` a pass, ``x`` a failure."""
    kinds = []
    for i, c in enumerate(pattern):
        at = T0 + timedelta(minutes=i)
        kinds += [t.kind for t in advance(state, Outcome(ok=c == ".", at=at), r)]
    return kinds


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (".xxxx...", ["down", "resolved"]),
        ("xx.xx.xx", []),  # never three in a row
        ("xxx.x.x.", ["down"]),  # a pass between failures does not resolve at 2
        ("xxx..xxx..", ["down", "resolved", "down", "resolved"]),
        ("xxxxxxxxxx", ["down"]),
    ],
)
def test_thresholds(pattern: str, expected: list[str]) -> None:
    assert feed(AlertState(), pattern, rule()) == expected


def test_send_on_resolved_off_still_closes_the_incident() -> None:
    state = AlertState()
    assert feed(state, "xxx..", rule(send_on_resolved=False)) == ["down"]
    assert state.status == "ok"
    assert feed(state, "xxx", rule(send_on_resolved=False)) == ["down"]
    assert state.incidents == 2


def test_missed_fires_count_as_several_failures() -> None:
    state = AlertState()
    assert advance(state, Outcome(ok=False, at=T0, count=5), rule())[0].kind == "down"
    assert state.failures == 5


def test_reminders_are_due_every_repeat_and_collapse_when_late() -> None:
    state = AlertState()
    r = rule(failure_threshold=1, repeat=timedelta(minutes=10))
    feed(state, "x", r)
    assert state.next_reminder_at == T0 + timedelta(minutes=10)
    assert remind(state, T0 + timedelta(minutes=9)) is None
    assert remind(state, T0 + timedelta(minutes=10)) is not None
    # Two hours without a daemon: one reminder, and the next is after now.
    late = T0 + timedelta(hours=2, minutes=3)
    assert remind(state, late) is not None
    assert remind(state, late) is None
    assert state.next_reminder_at == T0 + timedelta(hours=2, minutes=10)
    feed(state, "..", r)
    assert remind(state, late + timedelta(days=1)) is None  # resolved: no more


def test_rules_fill_defaults_and_name_the_key_of_a_mistake() -> None:
    alerts = {
        "ops": AlertConfig.model_validate(
            {"url": "json://x", "failure_threshold": 5, "default": True}
        ),
        "pager": AlertConfig.model_validate({"url": "json://y"}),
    }
    fetch = {"name": "get", "kind": "fetch", "connector": "api"}
    check = {"name": "sane", "kind": "check", "expect": "a", "alerts": ["pager"]}
    scheduled = Pipeline.model_validate(
        {"name": "p", "stages": [fetch, check], "schedule": {"interval": "1m"}}
    )
    [run_rule, check_rule] = rules_for(scheduled, alerts)
    # The scheduled pipeline names no run alert: the default one applies to its runs.
    assert (run_rule.alert, run_rule.subject, run_rule.failure_threshold) == ("ops", "run:p", 5)
    assert run_rule.on == {"failed", "timed_out"}
    assert (check_rule.alert, check_rule.subject, check_rule.label) == (
        "pager", "check:p/sane", "check p/sane",
    )  # fmt: skip
    opted_out = Pipeline.model_validate({**scheduled.model_dump(by_alias=True), "alerts": []})
    assert [r.alert for r in rules_for(opted_out, alerts)] == ["pager"]
    wrong = Pipeline.model_validate({"name": "p", "stages": [fetch, {**check, "alerts": ["nope"]}]})
    with pytest.raises(ConfigError) as caught:
        rules_for(wrong, alerts, where="pipelines.p.")
    assert caught.value.where == "pipelines.p.stages[1] (sane).alerts[0]"
    assert "unknown alert 'nope' (alerts: ops, pager)" in caught.value.message


def test_maintenance_windows() -> None:
    nightly = MaintenanceWindow.model_validate(
        {"cron": "0 2 * * *", "duration": "1h", "timezone": "Europe/Berlin", "alerts": ["ops"]}
    )
    # 02:30 in Berlin (winter: UTC+1) is 01:30 UTC.
    assert nightly.active(datetime(2026, 12, 1, 1, 30, tzinfo=UTC))
    assert not nightly.active(datetime(2026, 12, 1, 2, 30, tzinfo=UTC))
    # Summer (UTC+2): the window is 00:00–01:00 UTC, on local wall-clock time.
    assert nightly.active(datetime(2026, 7, 1, 0, 30, tzinfo=UTC))
    assert nightly.covers("ops", "anything") and not nightly.covers("pager", "p")
    once = MaintenanceWindow.model_validate(
        {"start": "2026-12-05T22:00:00Z", "end": "2026-12-06T02:00:00Z", "pipelines": ["p"]}
    )
    assert once.active(datetime(2026, 12, 6, 1, 0, tzinfo=UTC))
    assert once.covers("any-alert", "p") and not once.covers("any-alert", "q")
    with pytest.raises(ValueError, match="either cron and duration"):
        MaintenanceWindow.model_validate({"cron": "0 2 * * *", "start": "2026-12-05T22:00Z"})


def test_overdue_fires() -> None:
    every = Schedule(interval="1m")
    minutes = [T0 + timedelta(minutes=m) for m in range(1, 4)]
    assert overdue(every, T0, T0 + timedelta(seconds=59)) == []
    assert overdue(every, T0, T0 + timedelta(minutes=3, seconds=1)) == minutes
    anchored = Schedule(interval="1h", start=T0 + timedelta(minutes=30))
    half_past = [T0 + timedelta(minutes=30), T0 + timedelta(hours=1, minutes=30)]
    assert overdue(anchored, T0, T0 + timedelta(hours=2)) == half_past
    hourly = Schedule(cron="0 * * * *")
    hours = [T0 + timedelta(hours=h) for h in range(1, 4)]
    assert overdue(hourly, T0, T0 + timedelta(hours=3, minutes=5)) == hours
    ended = Schedule(cron="0 * * * *", end=T0 + timedelta(hours=1, minutes=30))
    assert overdue(ended, T0, T0 + timedelta(hours=5)) == [T0 + timedelta(hours=1)]
    every_second = Schedule(cron="* * * * * *")
    assert len(overdue(every_second, T0, T0 + timedelta(days=1))) == 1000
    assert len(overdue(Schedule(interval="1s"), T0, T0 + timedelta(days=1))) == 1000


def test_percentiles_are_within_the_bucket_resolution() -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(5, 1) for _ in range(5000)]
    histogram = latency.empty()
    for v in values:
        histogram[latency.bucket(v)] += 1
    values.sort()
    for q in (0.5, 0.9, 0.95, 0.99):
        exact = values[int(q * len(values))]
        assert latency.percentile(histogram, q) == pytest.approx(exact, rel=0.12)
    assert latency.percentile(latency.empty(), 0.5) is None


@pytest.mark.anyio
async def test_the_watchdog_counts_missed_fires_once(tmp_path: Path) -> None:
    config_path = tmp_path / "config.toml"
    config_path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "p.db"}"\n'
        '[alerts.ops]\nwebhook = { url = "http://127.0.0.1:9/h" }\n'
        '[connectors.api]\nkind = "http"\nbase_url = "http://127.0.0.1:9"\n'
        '[pipelines.nightly]\nschedule = { interval = "1m" }\n'
        'alerts = [{ alert = "ops", on = ["missed"], failure_threshold = 2 }]\n'
        '[[pipelines.nightly.stages]]\nname = "get"\nkind = "fetch"\nconnector = "api"\n',
        encoding="utf-8",
    )
    plan = build_plan(load_config(config_path))
    async with open_database(plan.config.database.url) as db:
        watchdog = Watchdog(db, lambda: plan)
        start = datetime.now(UTC)
        assert await watchdog.look(start) == 0  # starts watching now
        assert await watchdog.look(start + timedelta(seconds=80)) == 0  # within the grace
        assert await watchdog.look(start + timedelta(minutes=3)) == 1
        # Looked at again, by this node or another: the same fires are not counted twice.
        assert await watchdog.look(start + timedelta(minutes=3)) == 0
        states = await Monitoring(db).states()
        notifications = await Monitoring(db).notifications()
    [state] = states
    assert state["status"] == "open" and state["failures"] == 2
    assert "2 scheduled fires did not start" in state["last_cause"]
    assert [n["kind"] for n in notifications] == ["down"]
