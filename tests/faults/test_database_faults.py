"""PostgreSQL faults under load: every reducerd connection terminated (twice), and the
database restarted. Each runs for HandleAction and for PublishAction + WaitForCompletion.

The faults land on work in flight (see harness.WAITING_ON_LOCK / WAITING_ON_COMMIT): the
first termination while commits wait inside their transaction, the second while commits
wait after their commit record was written (committed, not yet answered), and the restart
with commits waiting likewise."""

import pytest

from harness import WAITING_ON_COMMIT, WAITING_ON_LOCK, Fault, ReducerdConfig, assert_correct, run_scenario

MODES = ["handle", "queued"]


@pytest.mark.parametrize("mode", MODES)
def test_pg_terminate_backend(mode, postgres, start_reducerd, settings, record):
    reducerd = start_reducerd(ReducerdConfig(postgres.url()))
    hits = []

    def terminate_mid_transaction():
        with postgres.hold_writes():
            waiting = postgres.wait_until(WAITING_ON_LOCK)
            terminated = postgres.terminate_backends()
        hits.append((terminated, waiting))
        return f"terminated={terminated},waiting_on_lock={waiting}"

    def terminate_mid_commit():
        with postgres.hold_commits():
            waiting = postgres.wait_until(WAITING_ON_COMMIT)
            terminated = postgres.terminate_backends()
        hits.append((terminated, waiting))
        return f"terminated={terminated},waiting_on_commit={waiting}"

    figures = run_scenario("pg_terminate", mode, [reducerd.addr],
                           [Fault(0.3, terminate_mid_transaction, "pg_terminate#1"),
                            Fault(0.6, terminate_mid_commit, "pg_terminate#2")],
                           settings, [reducerd])
    record(figures)
    assert_correct(figures, [reducerd])
    assert all(t > 0 and w > 0 for t, w in hits), f"a termination found no work in flight: {hits}"


@pytest.mark.parametrize("mode", MODES)
def test_pg_restart(mode, postgres, start_reducerd, settings, record):
    reducerd = start_reducerd(ReducerdConfig(postgres.url()))
    hits = []

    def restart():
        waiting = postgres.restart_mid_commit("fast")
        hits.append(waiting)
        return f"waiting_on_commit={waiting}"

    figures = run_scenario("pg_restart", mode, [reducerd.addr], [Fault(0.4, restart, "pg_restart")],
                           settings, [reducerd])
    record(figures)
    assert_correct(figures, [reducerd])
    assert all(hits), f"the restart found no commit in flight: {hits}"
