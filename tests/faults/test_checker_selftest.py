"""The checker catches what it claims to catch: against an in-memory fake (no reducerd,
no database) that is correct it finds nothing, and each planted defect shows up in the
figure it belongs to; the topic and history checks likewise on records and entries made here.
A few seconds in all."""

import pytest

from fake_reducerd import Defects, serve
from harness import TOPIC_FIGURES, Figures, Settings, check_history, check_topic, run_scenario
from purereducer import HistoryEntry, Status

SMALL = Settings(actions=600, keys=20, workers=8, settle_s=3.0, retry_s=10.0, inline_wait_ms=500)


def run(mode, defects, settings=SMALL):
    server, addr, _ = serve(defects)
    try:
        return run_scenario("selftest", mode, [addr], [], settings, [])
    finally:
        server.stop(0)


@pytest.mark.parametrize("mode", ["handle", "queued"])
def test_a_correct_server_passes(mode):
    # Unavailability is retried with the same id, so it loses and duplicates nothing; give-ups
    # leave GAVE_UP entries in the history, which are allowed.
    figures = run(mode, Defects(unavailable=7, give_up=13))
    assert figures.problems() == [], figures.line()
    assert figures.sent == SMALL.actions and figures.acked == SMALL.actions, figures.line()
    commits = sum(version for version, _ in figures.canonical.values())
    assert figures.history_gave_up > 0, figures.line()
    assert figures.history_entries == commits + figures.history_gave_up, figures.line()


@pytest.mark.parametrize("mode,defects,figure", [
    ("handle", Defects(lose=50), "lost"),
    ("handle", Defects(duplicate=50), "duplicated"),
    ("handle", Defects(reject=50), "rejected"),
    ("queued", Defects(drop_queued=50), "uncompleted"),
    ("queued", Defects(drop_queued=50), "lost"),
    ("queued", Defects(reject_queued=50), "rejected"),
    ("queued", Defects(duplicate=50), "duplicated"),
    ("handle", Defects(duplicate=50), "history_duplicated"),
    ("handle", Defects(history_gap=50), "history_gaps"),
    ("handle", Defects(history_gap=50), "history_mismatch"),
    ("queued", Defects(history_repeat=50), "history_gaps"),
    ("queued", Defects(history_repeat=50), "history_duplicated"),
    ("handle", Defects(history_stale=50), "history_mismatch"),
])
def test_each_defect_is_caught(mode, defects, figure):
    figures = run(mode, defects)
    assert getattr(figures, figure) > 0, figures.line()
    assert any(p.startswith(figure) for p in figures.problems()), figures.line()



# The topic check of the Kafka tests (harness.check_topic), on records made here: each
# defect shows up in its figure, and exact re-sends are counted but are no problem.

def topic_record(key, version, members, offset, partition=0, record_key=None):
    from purereducer.pb import events_pb2

    event = events_pb2.Event(state_committed=events_pb2.StateCommitted(workflow_key=key, version=version))
    event.state_committed.state.update({"m": {m: True for m in members}})
    return (partition, offset, (record_key or key).encode(), event.SerializeToString())


def topic_figures(versions, canonical_version=3, **kw):
    """Records of key k with the given versions (member "a<v>" added at version v) against a
    canonical state at canonical_version."""
    records = [topic_record("k", v, [f"a{i}" for i in range(1, v + 1)], offset) for offset, v in enumerate(versions)]
    state = {"m": {f"a{i}": True for i in range(1, canonical_version + 1)}}
    found, examples = check_topic(records, {"k": (canonical_version, state)})
    figures = Figures("selftest", "handle", kafka=True)
    for name in TOPIC_FIGURES:
        setattr(figures, name, found.get(name, 0))
    return figures, examples


def test_topic_in_order_passes():
    figures, examples = topic_figures([1, 2, 3])
    assert figures.problems() == [] and figures.topic_events == 3, (figures.line(), examples)


def test_topic_exact_resend_is_counted_not_a_problem():
    figures, examples = topic_figures([1, 2, 3, 2, 3])
    assert figures.problems() == [] and figures.resent_in_topic == 2, (figures.line(), examples)


@pytest.mark.parametrize("versions,canonical,figure", [
    ([1, 3], 3, "topic_gaps"),
    ([1, 3], 3, "topic_missing"),
    ([1, 3, 2], 3, "topic_reordered"),
    ([1, 2], 3, "topic_missing"),
    ([1, 2, 3, 4], 3, "topic_beyond"),
])
def test_topic_defect_is_caught(versions, canonical, figure):
    figures, examples = topic_figures(versions, canonical)
    assert getattr(figures, figure) > 0, (figures.line(), examples)
    assert any(p.startswith(figure) for p in figures.problems()), figures.line()


def test_topic_conflict_state_mismatch_and_malformed_are_caught():
    state = {"m": {"a1": True, "a2": True}}
    records = [topic_record("k", 1, ["a1"], 0), topic_record("k", 2, ["a1", "a2"], 1),
               topic_record("k", 2, ["a1", "zz"], 2)]  # v2 again, other bytes
    found, _ = check_topic(records, {"k": (2, state)})
    assert found["topic_conflicts"] == 1 and found["resent_in_topic"] == 0, found
    found, _ = check_topic([topic_record("k", 1, ["a1"], 0), topic_record("k", 2, ["a1", "zz"], 1)],
                           {"k": (2, state)})
    assert found["topic_state_mismatch"] == 1, found
    found, _ = check_topic([topic_record("k", 1, ["a1"], 0, record_key="other"), (0, 1, b"k", b"\xff\xff"),
                            topic_record("k", 2, ["a1", "a2"], 0, partition=1)], {"k": (2, state)})
    assert found["topic_malformed"] == 3, found


# The history check (harness.check_history) on entries made here: key k at version 3 whose
# state has a1..a3, each added by its own commit.

def entry(version, action_id, status=Status.COMMITTED, members=None):
    state = None
    if status == Status.COMMITTED:
        state = {"m": {m: True for m in (members if members is not None else [f"a{i}" for i in range(1, version + 1)])}}
    return HistoryEntry(version=version, status=status, action_id=action_id, action_type="add", correlation_id="",
                        state=state, intents=[], reason="", result_hash="", actor="reducer-service",
                        recorded_at=None, workflow_type="merge", payload={"m": {action_id: True}})


STATE = {"m": {"a1": True, "a2": True, "a3": True}}
GOOD = [entry(1, "a1"), entry(2, "a2"), entry(3, "a3")]


def history_figures(entries, version=3, state=STATE):
    found, examples = check_history("k", entries, version, state)
    figures = Figures("selftest", "handle")
    for name, value in found.items():
        setattr(figures, name, value)
    return figures, examples


def test_history_in_order_with_give_ups_passes():
    entries = [entry(0, "a1", Status.GAVE_UP), GOOD[0], GOOD[1], entry(2, "a3", Status.GAVE_UP), GOOD[2]]
    figures, examples = history_figures(entries)
    assert figures.problems() == [], (figures.line(), examples)
    assert figures.history_entries == 5 and figures.history_gave_up == 2, figures.line()


@pytest.mark.parametrize("entries,figure", [
    ([GOOD[0], GOOD[2]], "history_gaps"),  # v2 missing
    ([GOOD[0], GOOD[2]], "history_mismatch"),  # and a2 with it
    ([GOOD[0], GOOD[1], GOOD[1], GOOD[2]], "history_gaps"),  # v2 twice
    ([GOOD[0], GOOD[1], GOOD[1], GOOD[2]], "history_duplicated"),
    ([GOOD[0], GOOD[2], GOOD[1]], "history_gaps"),  # out of order
    (GOOD + [entry(4, "a4")], "history_gaps"),  # beyond the state's version
    ([GOOD[0], GOOD[1], entry(3, "a3", members=["a1", "a2"])], "history_mismatch"),  # last state wrong
    ([GOOD[0], entry(2, "a2", members=["a2"]), GOOD[2]], "history_mismatch"),  # v2 is not v1 + a2
    ([GOOD[0], GOOD[1], entry(3, "zz", members=["a1", "a2", "a3"])], "history_mismatch"),  # id not in state
    (GOOD + [entry(3, "a4", Status.REJECTED)], "history_mismatch"),  # merge never refuses
    ([], "history_gaps"),  # no history at all
])
def test_history_defect_is_caught(entries, figure):
    figures, examples = history_figures(entries)
    assert getattr(figures, figure) > 0, (figures.line(), examples)
    assert any(p.startswith(figure) for p in figures.problems()), figures.line()


def test_history_of_an_action_applied_twice_is_duplicated_not_a_gap():
    # a2 applied twice: versions 1..4 all there, a2 at two of them, state a1 a2 a3 at v4.
    entries = [GOOD[0], GOOD[1], entry(3, "a2", members=["a1", "a2"]), entry(4, "a3", members=["a1", "a2", "a3"])]
    figures, examples = history_figures(entries, version=4)
    assert figures.history_duplicated == 1, (figures.line(), examples)
    assert figures.history_gaps == 0 and figures.history_mismatch == 0, (figures.line(), examples)
