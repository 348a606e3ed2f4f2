"""Reading a key's history back through GetHistory and checking it against the key's state.

Every commit writes its history entry in the transaction that commits it, so once the load is
over a key at version N must have one COMMITTED entry for each of the versions 1..N, each
naming another action, those actions being exactly the state's members, each entry's state
being the previous one's plus its own action, and the last being the state GetState answers.
GAVE_UP entries (an action that lost to concurrent commits, resent or reported) are allowed
and only counted; REJECTED ones never belong here (merge never refuses).
"""

from __future__ import annotations

import collections
import time
from typing import Callable

from purereducer import PureReducerError, Status

from load import Conn, call_with_retry

# history_entries and history_gave_up are reported only; the other three fail a test.
HISTORY_FIGURES = ("history_entries", "history_gave_up", "history_gaps", "history_duplicated", "history_mismatch")
# Each COMMITTED entry carries the whole state, about one member per version, so a long
# history is read in pages of about this many members (far below gRPC's 4 MB message limit).
MEMBERS_PER_PAGE = 20_000


class HistoryUnread(Exception):
    """The history of a key could not be read to its end within the bound."""


def page_limit(version: int) -> int:
    """Entries per GetHistory page for a key at `version` (the server allows 1..1000)."""
    return max(10, min(1000, MEMBERS_PER_PAGE // max(1, version)))


def read_history(conn: Conn, key: str, version: int, deadline: float) -> list:
    """Every entry of `key`, oldest first, page after page until the last one (or `deadline`)."""
    entries: list = []
    token, seen_tokens = "", set()
    limit = page_limit(version)
    while True:
        page = call_with_retry(conn, lambda c: c.get_history(key, limit=limit, page_token=token), deadline)
        entries.extend(page.entries)
        token = page.next_page_token
        if not token:
            return entries
        if token in seen_tokens:
            raise HistoryUnread(f"page token {token!r} came back twice after {len(entries)} entries")
        if time.monotonic() >= deadline:
            raise HistoryUnread(f"not at the last page within the bound after {len(entries)} entries")
        seen_tokens.add(token)


def check_history(key: str, entries: list, version: int, state: dict) -> tuple:
    """Holds `entries` (oldest first) against the key's `version` and `state` (version 0 and
    {} for a key without state). Returns (Counter of HISTORY_FIGURES, examples)."""
    f = collections.Counter()
    examples: list = []

    def example(text: str) -> None:
        if len(examples) < 6:
            examples.append(text)

    f["history_entries"] = len(entries)
    f["history_gave_up"] = sum(1 for e in entries if e.status == Status.GAVE_UP)
    for e in entries:
        if e.status == Status.REJECTED:
            f["history_mismatch"] += 1
            example(f"{key}: history has {e.action_id} REJECTED at v{e.version}")
    for before, after in zip(entries, entries[1:]):
        if after.version < before.version:
            f["history_gaps"] += 1
            example(f"{key}: history v{after.version} after v{before.version}")
    committed = [e for e in entries if e.status == Status.COMMITTED]

    # Versions: 1..version, each once.
    per_version = collections.Counter(e.version for e in committed)
    missing = [v for v in range(1, version + 1) if v not in per_version]
    outside = sum(n for v, n in per_version.items() if not 1 <= v <= version)
    repeated = sum(n - 1 for v, n in per_version.items() if 1 <= v <= version and n > 1)
    f["history_gaps"] += len(missing) + outside + repeated
    if missing:
        example(f"{key}: no COMMITTED history entry for v{missing[:5]} of 1..{version}")
    if outside:
        example(f"{key}: {outside} COMMITTED history entries outside 1..{version}")
    if repeated:
        example(f"{key}: {repeated} versions committed twice in history")

    # Actions: each committed once, and exactly the state's members.
    per_action = collections.Counter(e.action_id for e in committed)
    twice = {a: n for a, n in per_action.items() if n > 1}
    f["history_duplicated"] += sum(n - 1 for n in twice.values())
    for action_id, n in list(twice.items())[:3]:
        example(f"{key}: {action_id} COMMITTED {n} times in history")
    members = state.get("m", {}) if isinstance(state.get("m", {}), dict) else {}
    not_in_state = set(per_action) - set(members)
    not_in_history = set(members) - set(per_action)
    f["history_mismatch"] += len(not_in_state) + len(not_in_history)
    if not_in_state:
        example(f"{key}: history commits {sorted(not_in_state)[:3]}, not in the state")
    if not_in_history:
        example(f"{key}: state has {sorted(not_in_history)[:3]}, never COMMITTED in history")

    # States: each one the previous plus its own action (merge), the last one the current state.
    before_version, before_state = 0, {}  # a workflow starts from the empty state
    for e in committed:
        # After a gap or a repeat (counted above) there is no previous state to hold it to.
        if e.version == before_version + 1 and isinstance(before_state, dict):
            prior = before_state.get("m", {})
            expected = {"m": {**(prior if isinstance(prior, dict) else {}), e.action_id: True}}
            if e.state != expected:
                f["history_mismatch"] += 1
                example(f"{key}: history v{e.version} state is not v{before_version}'s plus {e.action_id}")
        before_version, before_state = e.version, e.state
    if version > 0 and (not committed or committed[-1].state != state):
        f["history_mismatch"] += 1
        last = f"v{committed[-1].version}" if committed else "nothing"
        example(f"{key}: the last COMMITTED history entry ({last}) does not carry the state of v{version}")
    return f, examples


def verify_key_history(conn: Conn, key: str, version: int, state: dict, read_state: Callable[[], tuple],
                       within: float) -> tuple:
    """Reads `key`'s history and checks it against the state read before it. The state is
    read again afterwards: if it moved meanwhile (nothing should commit once the load is over),
    that is reported and both are read again, at most three times in all, within `within`
    seconds. Returns (Counter, examples); a history that cannot be read counts in
    history_mismatch."""
    deadline = time.monotonic() + within
    examples: list = []
    for _ in range(3):
        try:
            entries = read_history(conn, key, version, deadline)
            now_version, now_state = read_state()
        except (PureReducerError, HistoryUnread) as err:
            return collections.Counter(history_mismatch=1), [f"{key}: history not read: {err}"]
        if now_version == version:
            break
        examples.append(f"{key}: state moved from v{version} to v{now_version} while its history was read")
        version, state = now_version, now_state
    found, more = check_history(key, entries, version, state)
    return found, examples + more
