"""Retention pruning under faults: published outbox rows are deleted as soon as they are
published (a pruning pass every second) while the load runs, every reducerd connection is
terminated, and the process is SIGKILLed and restarted. Pruning may take only what the
pipeline is done with: nothing lost or applied twice, every projection reaches its version,
every queued action completes, and the outbox was pruned meanwhile (fewer rows left than
half the events, so the test cannot pass without pruning). Each runs for HandleAction and for PublishAction +
WaitForCompletion."""

import pytest

from harness import WAITING_ON_COMMIT, Fault, ReducerdConfig, assert_correct, run_scenario

MODES = ["handle", "queued"]
RETENTION = "[retention]\noutbox_seconds = 0\ncompletions_seconds = 3600\ninterval_seconds = 1\n"


@pytest.mark.parametrize("mode", MODES)
def test_retention_under_faults(mode, postgres, start_reducerd, settings, record):
    reducerd = start_reducerd(ReducerdConfig(postgres.url(), extra_toml=RETENTION))
    hits = []

    def terminate_mid_commit():
        with postgres.hold_commits():
            waiting = postgres.wait_until(WAITING_ON_COMMIT)
            terminated = postgres.terminate_backends()
        hits.append(waiting and terminated)
        return f"terminated={terminated},waiting_on_commit={waiting}"

    def kill_and_restart():
        with postgres.hold_commits():
            waiting = postgres.wait_until(WAITING_ON_COMMIT)
            reducerd.kill()
        hits.append(waiting)
        reducerd.start()
        return f"waiting_on_commit={waiting}"

    figures = run_scenario("retention_faults", mode, [reducerd.addr],
                           [Fault(0.3, terminate_mid_commit, "pg_terminate"),
                            Fault(0.6, kill_and_restart, "reducerd_sigkill")],
                           settings, [reducerd])
    record(figures)
    assert_correct(figures, [reducerd])
    assert all(hits), f"a fault found no commit in flight: {hits}"
    left = int(postgres.psql("SELECT count(*) FROM event_outbox") or 0)
    assert left < figures.acked // 2, \
        f"{left} outbox rows left of about {figures.acked} events: retention did not prune during the run"
