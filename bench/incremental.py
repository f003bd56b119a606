"""Issue 4: incremental cost. After a full load, a poll that finds 1% new events should transfer at most 2% of the
full poll's bytes and take at most 10% of its time.

Active chats only (every picked chat is still going at ``T``): run 1 registers them and polls each from 0 (the full
load: every event so far); then the simulator's clock moves on just far enough for about 1% new events, and run 2
polls every chat from its committed cursor. Bytes are the response bodies our client read (the simulator sends
no Content-Encoding, so they are the bytes on the wire), time is the ``chat_events`` step's wall time; the
simulator's CPU share is printed beside each.

The contract's poll, ``chat/{chatId}?from=N``, carries the chat's links and info in every answer (about 2.6 KB a
chat with nothing new, as documented). For comparison, not as what the pipeline does: the bytes the same cursors
would have moved through ``chat/{chatId}/events?from=N`` (events and two links only; info read apart, only when an
event says it changed: a contract change), read afterwards at the same simulated moment.

    python bench/incremental.py [CHATS] [--events 1000 --agents 5000 --new 0.01]
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import BUSY, BodyBytes, Pipeline, SimProcess, fmt, load, table, timed


def seconds_for_new(sim: SimProcess, base_events: int, share: float) -> float:
    """The smallest clock step (to 0.05 s) after which the chats have ``share`` x ``base_events`` new events."""
    lo, hi = 0.0, 1.0
    while sim.events_at(BUSY + timedelta(seconds=hi)) - base_events < share * base_events:
        lo, hi = hi, hi * 2
    while hi - lo > 0.05:
        mid = (lo + hi) / 2
        if sim.events_at(BUSY + timedelta(seconds=mid)) - base_events < share * base_events:
            lo = mid
        else:
            hi = mid
    return hi


def poll(pipeline: Pipeline, sim: SimProcess, at_s: float) -> tuple[int, Any, int]:
    """One whole run with the clock at ``T + at_s``; returns (events, Timed of the chat step, bytes sent by it)."""
    sim.set_clock(BUSY + timedelta(seconds=at_s))
    box: dict[str, Any] = {}

    def measure(step: Any) -> Any:
        sent = BodyBytes.total
        with timed(sim) as t:
            result = step()
        box.update(t=t, sent=BodyBytes.total - sent)
        return result

    result, summary = pipeline.run(measure=measure)
    assert summary.status == "ok", summary
    return result.rows["chat_event"], box["t"], box["sent"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("chats", nargs="?", type=int, default=500)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=5000)
    parser.add_argument("--new", type=float, default=0.01, help="share of new events in the second poll")
    parser.add_argument("--gzip", action="store_true",
                        help="also print what the bodies would weigh gzipped (level 6; compressing costs time here)")
    args = parser.parse_args()
    BodyBytes.install()
    if args.gzip:
        GzipBytes.install()
    with SimProcess(args.agents, args.chats, args.events, open_only=True) as sim:
        base = sim.events_at(BUSY)
        step_s = seconds_for_new(sim, base, args.new)
        pipeline = Pipeline(sim)
        full = poll(pipeline, sim, 0.0)
        cursors = open_cursors(pipeline)
        incremental = poll(pipeline, sim, step_s)
        GzipBytes.by_poll.append(0)
        events_only = events_endpoint_bytes(pipeline, cursors)
        pipeline.close()
    rows = []
    for name, (events, t, sent) in (("full load (every chat from 0)", full),
                                    (f"next poll, {step_s:.2f} s later", incremental)):
        rows.append([name, fmt(events), f"{sent / 1e6:.2f}", f"{t.wall:.2f}", t.cpu_share, t.sim_share])
    print(f"{sim.chat_count} active chats, {len(sim.by_login)} logins; [{load()}]")
    print(table(["chat_events step", "events", "MB received", "seconds", "our CPU", "sim CPU"], rows))
    new_share = incremental[0] / full[0]
    byte_share = incremental[2] / full[2]
    time_share = incremental[1].wall / full[1].wall
    print(f"\nnew events {100 * new_share:.2f}% of the full load; bytes {100 * byte_share:.2f}% (goal <= 2%: "
          f"{'met' if byte_share <= 0.02 else 'NOT met'}); time {100 * time_share:.1f}% (goal <= 10%: "
          f"{'met' if time_share <= 0.10 else 'NOT met'})")
    if args.gzip:
        full_gz, inc_gz, events_gz = GzipBytes.by_poll
        print(f"gzipped (as a compressing server would send them): full load {full_gz / 1e6:.2f} MB, next poll "
              f"{inc_gz / 1e6:.2f} MB: {100 * inc_gz / full_gz:.2f}% (events compress better than the links and "
              f"info); through chat/{{id}}/events?from=N {100 * events_gz / full_gz:.2f}%")
    chats = max(len(cursors), 1)
    print(f"per chat: {incremental[2] / chats:,.0f} B a poll (chat/{{id}}?from=N: links + info + new events); the "
          f"same cursors through chat/{{id}}/events?from=N (a contract change): {events_only / chats:,.0f} B, "
          f"{100 * events_only / full[2]:.2f}% of the full load")


class GzipBytes:
    """What each poll's bodies weigh gzipped (a server that compresses): summed per ``poll()``."""

    by_poll: ClassVar[list[int]] = []

    @classmethod
    def install(cls) -> None:
        import zlib

        from pipelines.liveperson import session

        counted = session.read_limited

        def compressed(*args: Any, **kwargs: Any) -> bytes:
            body = counted(*args, **kwargs)
            if cls.by_poll:
                cls.by_poll[-1] += len(zlib.compress(body, 6)) + 18  # + the gzip header and trailer
            return body

        session.read_limited = compressed
        global poll
        plain = poll

        def poll_counted(*args: Any, **kwargs: Any) -> Any:
            cls.by_poll.append(0)
            return plain(*args, **kwargs)

        poll = poll_counted


def open_cursors(pipeline: Pipeline) -> list[tuple[str, str, int]]:
    """(monitored_by, chat id, next_from) of every chat still polled, as committed."""
    import sqlalchemy as sa

    with pipeline.warehouse.begin() as conn:
        rows = conn.execute(sa.text(
            "SELECT monitored_by, chat_id, next_from FROM chat_session WHERE polling_stopped_at IS NULL"
        )).all()
    return [(row[0], row[1], int(row[2] or 0)) for row in rows]


def events_endpoint_bytes(pipeline: Pipeline, cursors: list[tuple[str, str, int]]) -> int:
    """Body bytes of ``chat/{chatId}/events?from=N`` at these cursors (the clock where the last poll left it)."""
    client = pipeline.connection.client
    sessions = {session.agent_id: session for session in client.sessions if session.agent_id}
    before = BodyBytes.total
    for agent_id, chat_id, from_ in cursors:
        if agent_id in sessions:
            client.chat_events(sessions[agent_id], chat_id, from_)
    return BodyBytes.total - before


if __name__ == "__main__":
    main()
