"""Golden histories: what earlier releases recorded must fold with today's code, to the same state.

Histories live in tests/data/histories/<release>/<agent>/ (see o_bus.replay.history_file) and are
written by ``python -m o_bus.cli.record_histories``. Each one is folded offline from the start
and from each of its snapshots; the ``tally`` history was written by version-1 code and is read
by today's version-2 code through its upcaster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from o_bus.agent.catalogue import Catalogue, find_definition, import_file
from o_bus.agent.definition import AgentDefinition
from o_bus.cli.record_histories import main as record_main
from o_bus.replay import LogRecord, replay_history
from o_bus.replay.golden import HistoryMismatch, check_history
from o_bus.replay.history_file import RecordedHistory
from o_bus.store.event_records import H_VERSION

HERE = Path(__file__).parent
HISTORIES = HERE / "data" / "histories"
TALLY = HERE / "agents_for_tests" / "tally.py"
TALLY_V1 = HERE / "agents_for_tests" / "tally_v1.py"
RECORDED = sorted(path for path in HISTORIES.glob("*/*") if path.is_dir())
TODAY = Catalogue.discover([str(TALLY)])


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def test_every_reference_agent_has_a_history() -> None:
    recorded = {path.name for path in RECORDED}
    assert {"counter", "echo", "memory", "tally"} <= recorded


@pytest.mark.parametrize("path", RECORDED, ids=_id)
def test_history_folds_with_todays_code(path: Path) -> None:
    history = RecordedHistory.load(path)
    definition = TODAY.get(history.agent)
    folded = check_history(definition, history)
    assert folded == history.expected["seq"] > 0
    assert history.snapshots, "a history records snapshots, so snapshot + tail is checked"
    assert history.wal, "a history records the WAL requests behind its events"


def test_tally_history_holds_old_event_versions_that_today_upcasts() -> None:
    [path] = [p for p in RECORDED if p.name == "tally"][:1]
    history = RecordedHistory.load(path)
    versions = {r.headers[H_VERSION] for r in history.events if H_VERSION in r.headers}
    assert versions == {"1"}
    assert TODAY.get("tally").event_types["added"].event_version == 2
    folded = replay_history(TODAY.get("tally"), history.events)
    assert folded.state.model_dump() == history.expected["state"]


def _tally_with_upcaster(body: str) -> AgentDefinition[Any]:
    source = TALLY.read_text().replace('return {"by": data["amount"]}', body)
    assert source != TALLY.read_text()
    module = import_file(TALLY, f"tally_broken_{abs(hash(body))}", source.encode())
    return find_definition(module, "tally", str(TALLY))


def _tally_history() -> RecordedHistory:
    return RecordedHistory.load(next(p for p in RECORDED if p.name == "tally"))


def test_an_upcaster_that_changes_values_fails_the_check() -> None:
    broken = _tally_with_upcaster('return {"by": data["amount"] * 2}')
    history = _tally_history()
    first_snapshot = min(int(r.data.split(b'"seq":')[1].split(b",")[0]) for r in history.snapshots)
    with pytest.raises(HistoryMismatch) as caught:
        check_history(broken, history)
    message = caught.value.message
    assert str(history.path) in message
    assert f"state after seq {first_snapshot} differs from the recorded snapshot" in message
    assert "'total'" in message
    assert caught.value.details["seq"] == first_snapshot


def test_an_upcaster_that_fails_names_the_event() -> None:
    broken = _tally_with_upcaster('return {"by": data["quantity"]}')
    history = _tally_history()
    with pytest.raises(HistoryMismatch) as caught:
        check_history(broken, history)
    assert str(history.path) in caught.value.message
    assert "cannot apply 'added' v1 at seq 1 of 'tally'" in caught.value.message
    assert caught.value.details["seq"] == 1


def test_a_missing_upcaster_fails_the_check() -> None:
    source = TALLY.read_text().split("@tally.upcaster")[0]
    module = import_file(TALLY, "tally_without_upcaster", source.encode())
    with pytest.raises(HistoryMismatch, match="no upcaster for 'added' from v1"):
        check_history(find_definition(module, "tally", str(TALLY)), _tally_history())


def test_recorded_state_that_today_folds_differently_fails() -> None:
    history = _tally_history()
    altered = RecordedHistory(
        path=history.path,
        agent=history.agent,
        events=history.events,
        snapshots=[],
        wal=history.wal,
        expected={**history.expected, "state": {**history.expected["state"], "total": -1}},
    )
    with pytest.raises(HistoryMismatch, match=r"ends at seq \d+ .* 'total': got \d+, recorded -1"):
        check_history(TODAY.get("tally"), altered)


def test_a_history_whose_events_do_not_match_its_wal_fails() -> None:
    history = _tally_history()
    shifted = [
        LogRecord(r.seq, r.subject, {**r.headers, "ce-id": "someone-else"}, r.data, r.time)
        if n == 2
        else r
        for n, r in enumerate(history.wal)
    ]
    broken = RecordedHistory(
        history.path, history.agent, history.events, history.snapshots, shifted, history.expected
    )
    with pytest.raises(HistoryMismatch, match=r"record at stream seq 3 names WAL record \d+"):
        check_history(TODAY.get("tally"), broken)


def test_the_recorder_writes_histories_that_fold(tmp_path: Path) -> None:
    """The command a release runs: real traffic through a real platform on its own embedded
    nats-server."""
    code = record_main([str(tmp_path), "--release", "next", "--agent", f"{TALLY_V1}:tally"])
    assert code == 0
    written = sorted(p.name for p in (tmp_path / "next").iterdir())
    assert written == ["counter", "echo", "memory", "tally"]
    for path in (tmp_path / "next").iterdir():
        history = RecordedHistory.load(path)
        assert check_history(TODAY.get(history.agent), history) == history.expected["seq"]
