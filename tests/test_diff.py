"""Diffy-style comparison: behaviour changes count, noise and ignored fields do not."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from o_bus.evolution.diff import (
    MISSING,
    IgnoreRules,
    NoiseModel,
    compare,
    differences,
    flatten,
)


def reply(*events: dict[str, Any], ok: bool = True, error: Any = None) -> dict[str, Any]:
    return {"ok": ok, "error": error, "events": list(events)}


def incremented(by: int, at: str, id_: str) -> dict[str, Any]:
    return {"type": "incremented", "version": 1, "data": {"by": by, "at": at, "id": id_}}


json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text("abc", max_size=3), inner),
    max_leaves=12,
)


def test_flatten_gives_dotted_paths_and_keeps_empty_containers() -> None:
    output = reply(incremented(2, "t", "x"))
    output["extra"] = {}
    assert flatten(output) == {
        "ok": True,
        "error": None,
        "events.0.type": "incremented",
        "events.0.version": 1,
        "events.0.data.by": 2,
        "events.0.data.at": "t",
        "events.0.data.id": "x",
        "extra": {},
    }
    assert flatten(reply()) == {"ok": True, "error": None, "events": []}


def test_differences_include_paths_missing_on_one_side() -> None:
    found = differences({"a": 1, "b": True, "c": 1}, {"a": 2, "b": 1, "c": 1.0, "d": None})
    assert found == {"a": (1, 2), "b": (True, 1), "d": (MISSING, None)}


@given(json_values)
def test_an_output_never_differs_from_itself(value: Any) -> None:
    assert differences(value, value) == {}
    assert not compare(value, value, value, NoiseModel()).differs


@given(json_values, json_values)
def test_differences_are_symmetric(a: Any, b: Any) -> None:
    forward, backward = differences(a, b), differences(b, a)
    assert forward.keys() == backward.keys()
    assert all(forward[path] == backward[path][::-1] for path in forward)


def test_a_behaviour_change_is_detected_beside_learnt_noise() -> None:
    noise = NoiseModel()
    primary = reply(incremented(2, "2026-01-01T00:00:00.1", "id-1"))
    secondary = reply(incremented(2, "2026-01-01T00:00:00.2", "id-2"))
    candidate = reply(incremented(3, "2026-01-01T00:00:00.3", "id-3"))
    result = compare(primary, secondary, candidate, noise)
    assert result.differs
    assert result.fields == {"events.0.data.by": (2, 3)}
    assert result.ignored == ["events.0.data.at", "events.0.data.id"]
    assert result.reasons["events.0.data.at"] == "noise (events.<incremented>.data.at)"


timestamps = st.datetimes().map(lambda d: d.isoformat())
ids = st.uuids().map(str)


@given(
    st.integers(),
    st.lists(timestamps, min_size=3, max_size=3, unique=True),
    st.lists(ids, min_size=3, max_size=3, unique=True),
)
def test_noise_only_differences_are_not_detected_once_learnt(
    by: int, ats: list[str], uuids: list[str]
) -> None:
    noise = NoiseModel()
    primary = reply(incremented(by, ats[0], uuids[0]))
    secondary = reply(incremented(by, ats[1], uuids[1]))  # live again: only noise differs
    assert not compare(primary, secondary, primary, noise).differs
    candidate = reply(incremented(by, ats[2], uuids[2]))
    quiet = compare(primary, None, candidate, noise)
    assert not quiet.differs
    assert quiet.ignored == ["events.0.data.at", "events.0.data.id"]
    changed = reply(incremented(by + 1, ats[2], uuids[2]))
    assert compare(primary, None, changed, noise).fields == {"events.0.data.by": (by, by + 1)}


def test_without_noise_samples_or_rules_a_timestamp_difference_counts() -> None:
    primary = reply(incremented(1, "t1", "a"))
    candidate = reply(incremented(1, "t2", "a"))
    result = compare(primary, None, candidate, NoiseModel())
    assert result.fields == {"events.0.data.at": ("t1", "t2")}


def test_noise_learnt_at_one_index_covers_the_same_event_type_elsewhere() -> None:
    noise = NoiseModel()
    noise.observe_secondary(reply(incremented(1, "t1", "a")), reply(incremented(1, "t2", "a")))
    other = {"type": "reset", "version": 1, "data": {"at": "t1"}}
    primary = reply(incremented(1, "t1", "a"), incremented(1, "t1", "b"), other)
    candidate = reply(
        incremented(1, "t9", "a"), incremented(1, "t8", "b"), {**other, "data": {"at": "t7"}}
    )
    result = compare(primary, None, candidate, noise)
    assert result.ignored == ["events.0.data.at", "events.1.data.at"]
    assert result.fields == {"events.2.data.at": ("t1", "t7")}  # another event type: not noise


def test_ignore_rules_are_globs_on_paths() -> None:
    primary = reply(incremented(1, "t1", "a"), {"type": "reset", "version": 1, "data": {"at": "x"}})
    candidate = reply(
        incremented(1, "t2", "b"), {"type": "reset", "version": 1, "data": {"at": "y"}}
    )
    noise = NoiseModel()
    assert not compare(primary, None, candidate, noise, ["events.*.data.at", "**.id"]).differs
    assert not compare(primary, None, candidate, noise, ["events.*.data"]).differs  # subtree
    by_type = compare(primary, None, candidate, noise, ["events.<incremented>.data"])
    assert by_type.fields == {"events.1.data.at": ("x", "y")}
    assert by_type.reasons["events.0.data.id"] == "ignore rule events.<incremented>.data"
    partial = compare(primary, None, candidate, noise, ["**.id"])
    assert set(partial.fields) == {"events.0.data.at", "events.1.data.at"}
    assert IgnoreRules(["events.*.data.created_*"]).match("events.4.data.created_at")
    assert IgnoreRules(["events.*.data.at"]).match("events.4.data.by") is None
    assert IgnoreRules(["**"]).match("anything.at.all")


def test_missing_and_extra_events_are_detected_even_with_noise() -> None:
    noise = NoiseModel()
    noise.observe_secondary(reply(incremented(1, "t1", "a")), reply(incremented(1, "t2", "b")))
    one = reply(incremented(1, "t1", "a"))
    two = reply(incremented(1, "t1", "a"), incremented(1, "t3", "c"))
    extra = compare(one, None, two, noise)
    assert extra.differs
    assert extra.fields["events.1.type"] == (MISSING, "incremented")
    missing = compare(two, None, one, noise)
    assert missing.fields["events.1.type"] == ("incremented", MISSING)
    assert compare(one, None, reply(), noise).fields["events"] == (MISSING, [])


def test_an_error_instead_of_success_is_detected() -> None:
    live = reply(incremented(1, "t1", "a"))
    failed = reply(ok=False, error={"code": "command_rejected", "message": "no"})
    result = compare(live, None, failed, NoiseModel(), ["**.id"])
    assert result.fields["ok"] == (True, False)
    assert result.fields["error.code"] == (MISSING, "command_rejected")
    assert result.fields["events.0.type"] == ("incremented", MISSING)
    assert result.as_json()["fields"]["error.code"] == {"candidate": "command_rejected"}
    assert result.as_json()["fields"]["ok"] == {"live": True, "candidate": False}


def test_relative_tolerance_for_numbers() -> None:
    live = {"ok": True, "score": 100.0, "count": 3, "flag": True}
    near = {"ok": True, "score": 100.5, "count": 3, "flag": True}
    assert compare(live, None, near, NoiseModel()).differs
    assert not compare(live, None, near, NoiseModel(), relative_tolerance=0.01).differs
    far = {**near, "score": 120.0}
    assert compare(live, None, far, NoiseModel(), relative_tolerance=0.01).fields == {
        "score": (100.0, 120.0)
    }
    assert differences({"flag": True}, {"flag": 1}, relative_tolerance=0.5)


def test_noise_model_round_trips_and_is_bounded() -> None:
    noise = NoiseModel(max_shapes=1)
    assert noise.observe_secondary({"a": 1, "b": 1}, {"a": 2, "b": 2}) == ["a", "b"]
    assert noise.noisy_shapes() == ["a"]  # over the bound: not learnt, so never hidden
    assert noise.noise_rate("a") == 1.0
    noise.observe_secondary({"a": 1}, {"a": 1})
    assert noise.noise_rate("a") == 0.5
    again = NoiseModel.from_dict(noise.as_dict())
    assert again.as_dict() == {"samples": 2, "counts": {"a": 1}}
