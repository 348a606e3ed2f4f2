"""The checker catches what it claims to catch: against an in-memory fake (no reducerd,
no database) that is correct it finds nothing, and each planted defect shows up in the
figure it belongs to. A few seconds in all."""

import pytest

from fake_reducerd import Defects, serve
from harness import Settings, run_scenario

SMALL = Settings(actions=600, keys=20, workers=8, settle_s=3.0, retry_s=10.0, inline_wait_ms=500)


def run(mode, defects, settings=SMALL):
    server, addr, _ = serve(defects)
    try:
        return run_scenario("selftest", mode, [addr], [], settings, [])
    finally:
        server.stop(0)


@pytest.mark.parametrize("mode", ["handle", "queued"])
def test_a_correct_server_passes(mode):
    # Unavailability is retried with the same id, so it loses and duplicates nothing.
    figures = run(mode, Defects(unavailable=7))
    assert figures.problems() == [], figures.line()
    assert figures.sent == SMALL.actions and figures.acked == SMALL.actions, figures.line()


@pytest.mark.parametrize("mode,defects,figure", [
    ("handle", Defects(lose=50), "lost"),
    ("handle", Defects(duplicate=50), "duplicated"),
    ("handle", Defects(reject=50), "rejected"),
    ("queued", Defects(drop_queued=50), "uncompleted"),
    ("queued", Defects(drop_queued=50), "lost"),
    ("queued", Defects(reject_queued=50), "rejected"),
    ("queued", Defects(duplicate=50), "duplicated"),
])
def test_each_defect_is_caught(mode, defects, figure):
    figures = run(mode, defects)
    assert getattr(figures, figure) > 0, figures.line()
    assert any(p.startswith(figure) for p in figures.problems()), figures.line()

