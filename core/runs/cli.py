"""The run store's command line.

    python -m core.runs [--state DIR] list [--json] | show RUN | stop RUN | delete RUN | resume RUN | rebuild
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.errors import ExplorerError
from core.runs.record import RunRecord
from core.runs.store import RunStore


def _summary(run: RunRecord) -> dict[str, Any]:
    """The fields ``list --json`` prints."""
    return {"id": run.id, "status": run.status, "architecture": run.arch, "data": run.dataset,
            "epochs": run.config.get("epochs"), "best_val_acc": run.best_val_acc, "test_acc": run.test_accuracy,
            "group": run.group_id}


def main(argv: list[str] | None = None) -> int:
    """``python -m core.runs``: list, show, delete, resume runs, or rebuild the store; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m core.runs", description="Manage the runs of the run store.")
    parser.add_argument("--state", type=Path, help="state folder (default: $CNN_EXPLORER_STATE or ./state)")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="the latest runs, newest first")
    listing.add_argument("--json", action="store_true", help="one JSON array instead of a table")
    listing.add_argument("--limit", type=int, default=100)
    for name, text in (("show", "everything about one run"), ("delete", "remove a run and its checkpoint files"),
                       ("stop", "cancel a queued run, or ask a running one to stop after its batch"),
                       ("resume", "queue a stopped, failed or interrupted run again (a worker continues it)")):
        commands.add_parser(name, help=text).add_argument("run_id")
    commands.add_parser("rebuild", help="rebuild the database from the checkpoint sidecars on disk")
    args = parser.parse_args(argv)
    store = RunStore(args.state)
    try:
        if args.command == "list":
            rows = [_summary(run) for run in store.runs(limit=args.limit)]
            if args.json:
                print(json.dumps(rows, indent=2))
            else:
                for row in rows:
                    test = f"{row['test_acc']:.2%}" if row["test_acc"] is not None else "–"
                    print(f"{row['id']}  {row['status']:<11} {row['architecture']:<14} {row['data']:<14} "
                          f"{row['epochs']!s:>4} epochs  test {test}")
        elif args.command == "show":
            print(json.dumps(store.run(args.run_id).as_dict(), indent=2, default=str))
            print(json.dumps({"checkpoints": {k: str(v) for k, v in store.checkpoints(args.run_id).items()}}))
        elif args.command == "stop":
            print(f"run {args.run_id}: {store.request_stop(args.run_id)}")
        elif args.command == "delete":
            store.delete(args.run_id)
            print(f"deleted run {args.run_id} and its files")
        elif args.command == "resume":
            store.resume(args.run_id)
            print(f"run {args.run_id} queued again: a worker (`python -m core.worker`, or the app's) continues it")
        else:
            print(f"rebuilt {store.db_path}: {store.rebuild()} runs added from checkpoint sidecars")
    except ExplorerError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


