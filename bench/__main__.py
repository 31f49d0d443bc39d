"""`python -m bench SCENARIO ...`: run one scenario, or `all` and rewrite docs/benchmarks.md."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from bench import scenarios
from bench.daemon import REPO, SETUPS


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--setup", choices=sorted(SETUPS), default="production",
                        help="embedded (SQLite + memory bus), production (PostgreSQL + "
                             "RabbitMQ, one daemon) or production-2 (two daemons)")
    parser.add_argument("--workers", type=int, default=2, help="generator processes")
    parser.add_argument("--json", type=Path, help="also write the result here as JSON")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="scenario", required=True)

    p = sub.add_parser("fanout", help="R chats x S subscribers at a delivery rate")
    _common(p)
    p.add_argument("--rooms", type=int, default=1)
    p.add_argument("--subscribers", type=int, default=1000)
    p.add_argument("--rate", type=float, default=25000, help="deliveries a second")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--runs", type=int, default=3)

    p = sub.add_parser("max", help="raise the rate until p99 > limit or a loss")
    _common(p)
    p.add_argument("--rooms", type=int, default=1)
    p.add_argument("--subscribers", type=int, default=1000)
    p.add_argument("--start-rate", type=float, default=10000)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--p99-limit", type=float, default=250.0, help="milliseconds")
    p.add_argument("--max-steps", type=int, default=10)
    p.add_argument("--searches", type=int, default=3, help="searches on the same daemons")

    p = sub.add_parser("idle", help="C subscribed sockets held open")
    _common(p)
    p.add_argument("--connections", type=int, default=5000)
    p.add_argument("--rooms", type=int, default=100)
    p.add_argument("--cycles", type=int, default=3, help="open and close this many times")

    p = sub.add_parser("ingest", help="messages committed a second on the socket path")
    _common(p)
    p.add_argument("--rooms", type=int, default=100)
    p.add_argument("--senders-per-room", type=int, default=1)
    p.add_argument("--window", type=int, default=8, help="unanswered sends per sender")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--runs", type=int, default=3)

    p = sub.add_parser("timeline", help="events pages and a resume over one long chat")
    _common(p)
    p.add_argument("--events", type=int, default=100_000, help="the chat's last seq")
    p.add_argument("--repeats", type=int, default=50, help="timed pages at each position")
    p.add_argument("--runs", type=int, default=2, help="resumes from seq 0")

    p = sub.add_parser("mixed", help="fanout with edits/reactions/deletes vs plain messages")
    _common(p)
    p.add_argument("--rooms", type=int, default=100)
    p.add_argument("--subscribers", type=int, default=10)
    p.add_argument("--rate", type=float, default=25000, help="deliveries a second")
    p.add_argument("--share", type=float, default=0.2, help="of events not messages")
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--runs", type=int, default=3, help="runs of each variant")

    p = sub.add_parser("notify", help="notifications: planning on the post path, dispatch")
    _common(p)
    p.add_argument("--part", choices=("planning", "dispatch", "both", "rate"), default="both",
                   help="rate: rows falling due at --rate a second (issue #15)")
    p.add_argument("--rate", type=float, default=1000.0, help="rate: due rows a second")
    p.add_argument("--seconds", type=float, default=5.0, help="rate: seconds of due times")
    p.add_argument("--rooms", type=int, default=100, help="chats of each planning variant")
    p.add_argument("--members", type=int, default=50, help="members of each chat")
    p.add_argument("--window", type=int, default=8, help="unanswered sends per sender")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--runs", type=int, default=3, help="runs of each planning variant")
    p.add_argument("--due", type=int, default=2000, help="due rows the dispatch sends")
    p.add_argument("--dispatch-runs", type=int, default=3, help="dispatches of --due rows")
    p.add_argument("--explain-rows", type=int, default=100_000,
                   help="rows present when the claim is EXPLAINed (0: not done)")

    p = sub.add_parser("presence", help="sockets come and go in waves; presence frames checked")
    _common(p)
    p.set_defaults(setup="production-2")
    p.add_argument("--sockets", type=int, default=5000, help="one a (chat, user)")
    p.add_argument("--chats", type=int, default=500)
    p.add_argument("--wave", type=int, default=1000, help="sockets opened or closed at once")
    p.add_argument("--cycles", type=int, default=3, help="all open, then all closed: times")
    p.add_argument("--grace", type=float, default=3.0, help="the daemons' --presence-grace")

    p = sub.add_parser("read", help="read frames between each user's two devices")
    _common(p)
    p.set_defaults(setup="production-2")
    p.add_argument("--sockets", type=int, default=1000, help="two a user")
    p.add_argument("--chats", type=int, default=50)
    p.add_argument("--rate", type=float, default=2.0, help="read frames a second a socket")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--runs", type=int, default=3)

    p = sub.add_parser("subs", help="idle sockets of several subscriptions each, presence on")
    _common(p)
    p.add_argument("--sockets", type=int, default=19_900)
    p.add_argument("--chats", type=int, default=2000)
    p.add_argument("--per-socket", type=int, default=5, help="subscriptions a socket")
    p.add_argument("--runs", type=int, default=3, help="runs, each on fresh daemons")
    p = sub.add_parser("sweep", help="one sweep's query: the full check against the changed")
    _common(p)
    p.add_argument("--chats", type=int, default=20_000, help="chats the daemon follows")
    p.add_argument("--active", type=int, default=10, help="chats posted to between sweeps")
    p.add_argument("--rounds", type=int, default=30)

    p = sub.add_parser("all", help="every scenario on every set-up; rewrites the docs")
    p.add_argument("--short", action="store_true", help="the short version (make bench)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    p.add_argument("--only", default="", help="comma-separated: run only the items whose "
                   "label is one or starts with one and a space (fanout,ingest production); "
                   "implies --no-docs")
    p.add_argument("--json", type=Path, default=REPO / "build" / "bench-results.json")
    p.add_argument("--rerun", type=Path, help="with --only: replace those items in this saved "
                   "run (e.g. build/bench-results.json) and rewrite the docs from it")

    p = sub.add_parser("report", help="rewrite docs/benchmarks.md from a saved `all` run")
    p.add_argument("--json", type=Path, default=REPO / "build" / "bench-results.json")

    args = parser.parse_args(argv)
    if args.scenario == "report":
        from bench import report

        saved = json.loads(args.json.read_text())
        report.write(saved["environment"], saved["results"])
        return 0
    scenarios.prepare()
    if args.scenario == "all":
        from bench.suite import run_all

        only = tuple(word.strip() for word in args.only.split(",") if word.strip())
        return run_all(short=args.short, workers=args.workers,
                       write_docs=not (args.no_docs or (only and not args.rerun)),
                       json_path=args.json, only=only, rerun=args.rerun)
    started = time.monotonic()
    if args.scenario == "fanout":
        result = scenarios.fanout(args.setup, args.rooms, args.subscribers, args.rate,
                                  args.duration, args.runs, args.workers)
    elif args.scenario == "max":
        result = scenarios.max_rate(args.setup, args.rooms, args.subscribers, args.start_rate,
                                    args.duration, args.workers, args.p99_limit,
                                    args.max_steps, searches=args.searches)
    elif args.scenario == "idle":
        result = scenarios.idle(args.setup, args.connections, args.rooms, args.workers,
                                args.cycles)
    elif args.scenario == "mixed":
        from bench.mixed import mixed

        result = mixed(args.setup, args.rooms, args.subscribers, args.rate, args.duration,
                       args.runs, args.workers, args.share)
    elif args.scenario in ("presence", "read", "subs"):
        from bench import presence, reads, subs

        if args.scenario == "presence":
            result = presence.presence(args.setup, args.sockets, args.chats, args.wave,
                                       args.cycles, args.grace, args.workers)
        elif args.scenario == "read":
            result = reads.read(args.setup, args.sockets, args.chats, args.rate,
                                args.duration, args.runs, args.workers)
        else:
            result = subs.subscriptions(args.setup, args.sockets, args.chats,
                                        args.per_socket, args.workers, args.runs)
    elif args.scenario == "timeline":
        result = scenarios.timeline(args.setup, args.events, args.repeats, args.runs)
    elif args.scenario == "sweep":
        from bench import sweep

        result = sweep.sweep(args.setup, args.chats, args.active, args.rounds)
    elif args.scenario == "notify":
        from bench import notify

        results = []
        if args.part in ("planning", "both"):
            results.append(notify.planning(args.setup, args.rooms, args.members, args.window,
                                           args.duration, args.runs, args.workers))
        if args.part in ("dispatch", "both"):
            results.append(notify.dispatch(args.setup, args.due,
                                           explain_rows=args.explain_rows,
                                           runs=args.dispatch_runs))
        if args.part == "rate":
            from bench import notify_rate

            results.append(notify_rate.rate(args.setup, args.rate, args.seconds, args.runs))
        print(json.dumps([{"part": r.params["part"], "summary": r.summary,
                           "daemons": [asdict(d) for d in r.daemons]} for r in results],
                         indent=1))
        if args.json:
            args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
        return 0
    else:
        result = scenarios.ingest(args.setup, args.rooms, args.senders_per_room, args.window,
                                  args.duration, args.runs, args.workers)
    print(json.dumps({"summary": result.summary,
                      "daemons": [asdict(d) for d in result.daemons],
                      "seconds": round(time.monotonic() - started, 1)}, indent=1))
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
