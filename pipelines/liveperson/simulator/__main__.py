"""``python -m pipelines.liveperson.simulator``: serve the simulator in the foreground for manual runs and demos."""

from __future__ import annotations

import argparse
import contextlib
from datetime import UTC, datetime

from pipelines.liveperson.simulator import SimClock, Simulator, WorldConfig


def _utc(value: str) -> datetime:
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipelines.liveperson.simulator", description=__doc__)
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    parser.add_argument("--start", type=_utc, default=None, help="simulated start time (ISO-8601, UTC if naive)")
    parser.add_argument("--logins", type=int, default=3, help="how many agent logins to print")
    args = parser.parse_args(argv)

    simulator = Simulator(
        WorldConfig(seed=args.seed, agents=args.agents),
        clock=SimClock(at=args.start, speed=args.speed),
        port=args.port,
        host=args.host,
    )
    simulator.start()
    print(f"LivePerson simulator on {simulator.base_url} (account {simulator.account_id})", flush=True)
    print(f"LP_BASE_URL={simulator.base_url} LP_ACCOUNT_ID={simulator.account_id}", flush=True)
    for username, password in simulator.logins(args.logins):
        print(f"login: {username} / {password}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        simulator.serve_forever()


if __name__ == "__main__":
    main()
