"""The pure pipeline model: wiring, validation, transforms, aggregation — no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from podium.pipeline import (
    Aggregate,
    Check,
    Fetch,
    Pipeline,
    PipelineError,
    Store,
    Template,
    Transform,
)

pytestmark = pytest.mark.anyio


def fetch(name: str = "get", **kw: object) -> Fetch:
    return Fetch(name=name, connector="api", path="/x", **kw)


def test_linear_chain_wires_each_stage_to_the_one_before() -> None:
    p = Pipeline(
        name="p",
        stages=[fetch(), Transform(name="t", select=["id"]), Store(name="s", table="t", key="id")],
    )
    assert p.order == ("get", "t", "s")
    assert p.inputs_of("t") == ("get",)
    assert p.inputs_of("s") == ("t",)
    assert p.consumers_of("get") == ("t",)


def test_fetch_without_from_is_a_source_even_after_another_stage() -> None:
    p = Pipeline(
        name="p",
        stages=[fetch("a"), fetch("b"), Aggregate(name="m", **{"from": ["a", "b"]}, merge_on="id")],
    )
    assert p.inputs_of("b") == ()
    assert p.inputs_of("m") == ("a", "b")


def test_plain_functions_become_transform_stages() -> None:
    def double(record: dict) -> dict:
        return record

    p = Pipeline(name="p", stages=[fetch(), double])
    assert isinstance(p.stage("double"), Transform)


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ([fetch(), fetch()], "duplicate stage name 'get'"),
        ([fetch(), Transform(name="t", select=["a"], **{"from": "zz"})], "unknown stage 'zz'"),
        ([Transform(name="t", select=["a"])], "has no input"),
        ([fetch(), Store(name="s", table="t", key="id"), Transform(name="t", select=["a"])],
         "reads store stage 's'"),
        ([fetch(), Transform(name="t", select=["a"]), Store(name="s", table="t", key="b")],
         "the store key uses field 'b'"),
        ([fetch(), Transform(name="t", select=["a"]), Transform(name="u", rename={"b": "c"})],
         "'rename' uses field 'b'"),
        ([fetch(), Aggregate(name="g", group_by=["k"], metrics={"n": "count"}),
          Transform(name="t", select=["k", "avg"])], "'select' uses field 'avg'"),
        ([fetch(), Transform(name="t", select=["a"]),
          Check(name="c", on="responses", expect="status == `200`")],
         "a response check reads exactly one fetch stage"),
    ],
)  # fmt: skip
def test_invalid_chains_fail_at_load_time(stages: list, message: str) -> None:
    with pytest.raises((PipelineError, ValidationError), match=message.replace("(", r"\(")):
        Pipeline(name="p", stages=stages)


def test_cycles_are_found() -> None:
    with pytest.raises(ValidationError, match="cycle"):
        Pipeline(
            name="p",
            stages=[
                fetch(),
                Transform(name="a", select=["id"], **{"from": "b"}),
                Transform(name="b", select=["id"], **{"from": "a"}),
            ],
        )


def test_template_fields_are_checked_against_for_each() -> None:
    with pytest.raises(ValidationError, match="'city'"):  # scalars bind to {value}
        Pipeline(
            name="p", stages=[Fetch(name="f", connector="api", path="/w/{city}", for_each=[1])]
        )
    ok = Fetch(name="f", connector="api", path="/w/{city}", for_each=["a"], as_="city")
    assert list(ok.fan_out_items()) == [{"city": "a"}]
    ranged = Fetch(
        name="f", connector="api", path="/p/{page}", for_each={"range": [0, 3]}, as_="page"
    )
    assert [i["page"] for i in ranged.fan_out_items()] == [0, 1, 2]
    assert ranged.fan_out_size() == 3


def test_template_rendering_keeps_types_and_quotes_paths() -> None:
    assert Template("{n}").render_value({"n": 5}) == 5
    assert Template("/a/{x.y}/b").render({"x": {"y": "c d"}}) == "/a/c d/b"
    with pytest.raises(PipelineError, match=r"needs \{z\}"):
        Template("/{z}").render({"a": 1})


async def test_builtin_operations_run_in_documented_order() -> None:
    t = Transform(
        name="t",
        compute={"temp": "main.temp", "n_tags": "length(tags)"},
        coerce={"at": "datetime", "count": "int"},
        filter="count > `1`",
        rename={"temp": "temperature"},
        drop=["tags"],
        select=["id", "temperature", "n_tags", "at", "count"],
    )
    records = [
        {"id": 1, "main": {"temp": 20.5}, "tags": ["a", "b"], "at": "2026-01-01T10:00:00+02:00",
         "count": "3"},
        {"id": 2, "main": {"temp": 1}, "tags": [], "at": "2026-01-01T00:00:00Z", "count": "1"},
        {"id": 3, "main": {}, "tags": [], "at": "yesterday", "count": "5"},
    ]  # fmt: skip
    out, rejected = await t.apply(records)
    assert out == [
        {
            "id": 1,
            "temperature": 20.5,
            "n_tags": 2,
            "at": datetime(2026, 1, 1, 8, 0, tzinfo=UTC),
            "count": 3,
        }
    ]
    assert [(r["id"], reason) for r, reason in rejected] == [
        (3, "field 'at': cannot coerce 'yesterday' to datetime")
    ]


async def test_callables_sync_async_and_per_batch() -> None:
    def explode(record: dict) -> list[dict]:
        return [{"id": record["id"], "i": i} for i in range(record["n"])]

    async def keep_odd(record: dict) -> dict | None:
        return record if record["i"] % 2 else None

    def total(batch: list[dict]) -> list[dict]:
        return [{"id": 0, "total": sum(r["i"] for r in batch)}]

    e = Transform(name="e", call=explode)
    k = Transform(name="k", call=keep_odd)
    b = Transform(name="b", call=total, per="batch")
    out, _ = await e.apply([{"id": 1, "n": 4}])
    out, _ = await k.apply(out)
    assert [r["i"] for r in out] == [1, 3]
    assert (await b.apply(out))[0] == [{"id": 0, "total": 4}]


def test_group_by_and_merge_accumulators() -> None:
    g = Aggregate(
        name="g",
        group_by=["k"],
        metrics={"n": "count", "s": "sum:v", "lo": "min:v", "hi": "max:v", "mean": "avg:v"},
    ).accumulator(("src",))
    g.add("in", [{"k": "a", "v": 1}, {"k": "a", "v": 3}, {"k": "b", "v": None}, {"k": "b", "v": 5}])
    assert sorted(g.results(), key=lambda r: r["k"]) == [
        {"k": "a", "n": 2, "s": 4, "lo": 1, "hi": 3, "mean": 2.0},
        {"k": "b", "n": 2, "s": 5, "lo": 5, "hi": 5, "mean": 5.0},
    ]
    m = Aggregate(name="m", merge_on="city", how="inner").accumulator(("w", "a"))
    m.add("w", [{"city": "x", "t": 1}, {"city": "y", "t": 2}])
    m.add("a", [{"city": "x", "pm": 9}])
    assert m.results() == [{"city": "x", "t": 1, "pm": 9}]


def test_aggregate_needs_exactly_one_mode() -> None:
    with pytest.raises(ValidationError, match="exactly one"):
        Aggregate(name="a")
    with pytest.raises(ValidationError, match="unknown reducer"):
        Aggregate(name="a", group_by=["k"], metrics={"x": "median:v"})


def test_group_by_on_mixed_types_is_a_stage_error() -> None:
    from podium.pipeline import StageError

    g = Aggregate(name="g", group_by=["k"], metrics={"hi": "max:v"}).accumulator(("s",))
    with pytest.raises(StageError, match="max:v cannot compare 'x' with 1"):
        g.add("in", [{"k": 1, "v": 1}, {"k": 1, "v": "x"}])
