"""reducerd faults under load: the process SIGKILLed and restarted on the same database and
address, one of three replicas on one database SIGKILLed for good (its clients move to the
survivors), and of two replicas the one running the in-process pipeline SIGKILLed for good
(the other takes the pipeline over). Each runs for HandleAction and for PublishAction +
WaitForCompletion.

The kills land while transactions of the killed process are in flight: commits waiting after
their commit record was written (harness.WAITING_ON_COMMIT), which commit once released,
after their process died, so their clients only see the connection drop and resend; for the
replicas also transactions waiting for a lock (in queued mode a replica's work can be all
behind the others' held commits, and then the kill finds none; its figure says so)."""

import pytest

from harness import NO_MATERIALIZER, WAITING_ON_COMMIT, WAITING_ON_LOCK, Fault, ReducerdConfig, assert_correct, run_scenario

MODES = ["handle", "queued"]
# Bound on waiting for a commit of one replica in flight: in queued mode a replica commits
# only when it claims queued actions, which another replica may have taken just before.
COMMIT_WAIT_S = 30.0
# A transaction of the process in flight: committed and waiting to be answered, or waiting
# for a lock.
IN_FLIGHT = f"({WAITING_ON_COMMIT} OR {WAITING_ON_LOCK})"
PIPELINE_LOCK = "purereducer-local-pipeline"


def pipeline_holder(postgres) -> str:
    """The database user of the session holding the in-process pipeline's advisory lock."""
    return postgres.psql(
        "SELECT a.usename FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        f"AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtext('{PIPELINE_LOCK}')::bigint", db="postgres")


@pytest.mark.parametrize("mode", MODES)
def test_reducerd_sigkill_restart(mode, postgres, start_reducerd, settings, record):
    reducerd = start_reducerd(ReducerdConfig(postgres.url()))
    hits = []

    def kill_and_restart():
        with postgres.hold_commits():
            waiting = postgres.wait_until(WAITING_ON_COMMIT)
            reducerd.kill()
        hits.append(waiting)
        reducerd.start()
        return f"waiting_on_commit={waiting}"

    figures = run_scenario("reducerd_sigkill", mode, [reducerd.addr],
                           [Fault(0.4, kill_and_restart, "reducerd_sigkill")], settings, [reducerd])
    record(figures)
    assert_correct(figures, [reducerd])
    assert reducerd.starts == 2
    assert all(hits), f"the kill found no commit in flight: {hits}"


@pytest.mark.parametrize("mode", MODES)
def test_replica_sigkill(mode, postgres, start_reducerd, settings, record):
    # Three processes on one database, sharing every key, so they also race each other
    # (version conflicts, retried; more attempts than the default so that give-ups stay
    # rare; a HandleAction give-up is resent with the same id anyway). Without Kafka the
    # in-process materializer runs in one process per database: "a", which is not killed.
    # Each logs in as its own database user, so b's connections can be told apart.
    urls = {name: postgres.create_user(f"r{name}") for name in "abc"}
    a = start_reducerd(ReducerdConfig(urls["a"], max_attempts=10), "a")
    b = start_reducerd(ReducerdConfig(urls["b"], roles=NO_MATERIALIZER, max_attempts=10), "b")
    c = start_reducerd(ReducerdConfig(urls["c"], roles=NO_MATERIALIZER, max_attempts=10), "c")
    hits = []

    def kill_b():
        with postgres.hold_commits():
            waiting = postgres.wait_until(IN_FLIGHT, COMMIT_WAIT_S, user="rb")
            b.kill()
        hits.append(waiting)
        return f"in_flight_of_b={waiting}"

    figures = run_scenario("replica_sigkill", mode, [a.addr, b.addr, c.addr],
                           [Fault(0.4, kill_b, "replica_sigkill")], settings, [a, b, c],
                           killed={"b"}, read_targets=[a.addr])
    record(figures)
    assert_correct(figures, [a, b, c])
    assert not b.alive
    # With every commit held, b's queued work can be stuck behind the others' (its claims
    # wait for rows they hold, its callers for completions they have not recorded), so in
    # queued mode the kill may find nothing of b's in flight; the figure says so.
    if mode == "handle":
        assert all(hits), f"the kill found no transaction of b in flight: {hits}"


@pytest.mark.parametrize("mode", MODES)
def test_pipeline_holder_sigkill(mode, postgres, start_reducerd, settings, record):
    # Two processes on one database without Kafka, both with every role: "a" starts first
    # and runs the in-process pipeline (projections, subscribers' events); "b" stands by. a is
    # SIGKILLed for good, while a commit of it is in flight when one shows within 30 s (in
    # queued mode b's held commits can keep a from reaching one; the figure says which); b
    # must take the pipeline over, so every projection (read from b) still reaches its
    # workflow's version.
    urls = {name: postgres.create_user(f"r{name}") for name in "ab"}
    a = start_reducerd(ReducerdConfig(urls["a"], max_attempts=10), "a")
    b = start_reducerd(ReducerdConfig(urls["b"], max_attempts=10), "b")
    holders = []

    def kill_a():
        holders.append(pipeline_holder(postgres))
        with postgres.hold_commits():
            waiting = postgres.wait_until(IN_FLIGHT, COMMIT_WAIT_S, user="ra")
            a.kill()
        return f"in_flight_of_a={waiting},holder={holders[0]}"

    figures = run_scenario("pipeline_holder_sigkill", mode, [a.addr, b.addr],
                           [Fault(0.4, kill_a, "pipeline_holder_sigkill")], settings, [a, b],
                           killed={"a"}, read_targets=[b.addr])
    record(figures)
    assert_correct(figures, [a, b])
    assert not a.alive
    assert holders == ["ra"], f"the pipeline was not a's when a was killed: {holders}"
    assert pipeline_holder(postgres) == "rb", "b did not take the pipeline over"
