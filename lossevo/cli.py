"""``lossevo`` command line: run, resume, status, report, export, tasks, compare.

The only place that turns command-line strings into paths and choices; errors print one line
(``lossevo: error: ...``) and exit with status 2, never a traceback, for bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lossevo.search.backends import BACKENDS  # stdlib only: cheap for `lossevo tasks`

__all__ = ["main"]

_EPILOG = """examples:
  lossevo run experiments/quickstart.toml --out runs/quick
  lossevo status runs/quick            (or --json)
  lossevo resume runs/quick            (after a crash or Ctrl-C)
  lossevo report runs/quick            (writes runs/quick/report.md and plots/)
  lossevo export runs/quick --rank 1 --output my_loss.py
  lossevo compare experiments/compare-smoke.toml --out runs/compare-smoke
"""


def _add_work_options(p: argparse.ArgumentParser, where: str) -> None:
    """Backend, workers, scheduler, device and quiet: shared by `run` and `compare`."""
    p.add_argument("--backend", choices=BACKENDS,
                   help=f"where {where} (default: the config's, else process)")
    p.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    p.add_argument("--scheduler", help="dask scheduler address, e.g. tcp://127.0.0.1:8786")
    p.add_argument("--device", help="torch device for training, e.g. cpu or cuda:0 "
                   "(default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lossevo", description="Evolve loss functions by genetic programming and measure "
        "them under label noise and distribution shift.", epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="start a campaign from a TOML config into a run directory")
    r.add_argument("config", type=Path, help="campaign TOML file (see experiments/)")
    r.add_argument("--out", type=Path, required=True, help="new run directory")
    _add_work_options(r, "candidates are evaluated")
    r.add_argument("--seed", type=int, help="campaign seed (default: the config's, else 0)")

    s = sub.add_parser("resume", help="continue a run from its last complete generation")
    s.add_argument("run_dir", type=Path)
    s.add_argument("--use-previous", action="store_true",
                   help="resume from the checkpoint before the last (if the last is corrupt)")
    s.add_argument("--quiet", action="store_true")

    t = sub.add_parser("status", help="generation, counters and hall of fame of a run")
    t.add_argument("run_dir", type=Path)
    t.add_argument("--json", action="store_true", help="print one JSON object")

    rep = sub.add_parser("report", help="write report.md with plots into the run directory")
    rep.add_argument("run_dir", type=Path)
    rep.add_argument("--top", type=int, default=10, help="rows in the top-N table")

    e = sub.add_parser("export", help="write a hall-of-fame loss as a standalone .py file")
    e.add_argument("run_dir", type=Path)
    e.add_argument("--rank", type=int, default=1, help="hall-of-fame rank, 1 = best")
    e.add_argument("--output", type=Path, required=True, help="the .py file to write")

    sub.add_parser("tasks", help="list the task presets")

    c = sub.add_parser("compare", help="train evolved and baseline losses and schemes on the "
                       "same tasks and instances; write compare.csv/.json/.md and plots")
    c.add_argument("config", type=Path, help="comparison TOML file (see docs/compare.md)")
    c.add_argument("--out", type=Path, required=True, help="output directory")
    _add_work_options(c, "units are trained")
    c.add_argument("--instances", type=int, help="instances per contender and task "
                   "(default: the config's, else 8)")
    return p


def _export(args) -> str:
    from lossevo.search.run_config import load_run_config
    from lossevo.search.store import RunStore
    from lossevo.symbolic.export import export_loss

    store = RunStore(args.run_dir)
    cfg, _ = load_run_config(store)
    hof = store.load_state().hall_of_fame
    if not 1 <= args.rank <= len(hof):
        raise ValueError(f"--rank {args.rank} is not allowed; the hall of fame has ranks "
                         f"1..{len(hof)}")
    rec = hof[args.rank - 1]
    path = export_loss(rec.expression, args.output, kind=cfg.task.kind,
                       fitness=rec.fitness, metrics=dict(rec.metrics))
    return f"wrote {path} (rank {args.rank}: {rec.expression})"


def _dispatch(args) -> None:
    if args.command == "run":
        from lossevo.search.campaign import run

        store = run(args.config, args.out, quiet=args.quiet, device=args.device,
                    name=args.backend, workers=args.workers, scheduler=args.scheduler,
                    seed=args.seed)
        print(f"finished: {store.root} (lossevo status {store.root})")
    elif args.command == "resume":
        from lossevo.search.campaign import resume

        store = resume(args.run_dir, quiet=args.quiet, use_previous=args.use_previous)
        print(f"finished: {store.root}")
    elif args.command == "status":
        from lossevo.search.report import format_status, status

        info = status(args.run_dir)
        print(json.dumps(info) if args.json else format_status(info))
    elif args.command == "report":
        from lossevo.search.report import write_report

        print(f"wrote {write_report(args.run_dir, top=args.top)}")
    elif args.command == "export":
        print(_export(args))
    elif args.command == "compare":
        from lossevo.comparison import compare

        out = compare(args.config, args.out, quiet=args.quiet, device=args.device,
                      name=args.backend, workers=args.workers, scheduler=args.scheduler,
                      instances=args.instances)
        print(f"wrote {out / 'compare.md'}, compare.csv, compare.json")
    elif args.command == "tasks":
        from lossevo.evaluation.tasks import list_tasks

        print("\n".join(list_tasks()))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from lossevo.errors import CampaignFailed
    from lossevo.search.store import RunDirError

    try:
        _dispatch(args)
    except CampaignFailed as exc:
        print(f"lossevo: campaign failed: {exc}", file=sys.stderr)
        return 1
    except (ValueError, RunDirError) as exc:
        print(f"lossevo: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a read-only or full disk, a missing file, a path that is a file
        where = f": {exc.filename}" if exc.filename else ""
        print(f"lossevo: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # the backend has already stopped its workers
        hint = ""
        if args.command == "compare":  # CompareInterrupted says what was kept
            hint = str(exc) or (f"finished units are kept in {args.out / 'units'}; rerun the "
                                "same compare with the same --out to reuse them")
        elif args.command in ("run", "resume"):
            from lossevo.search.store import RunStore

            where = args.out if args.command == "run" else args.run_dir
            kept = ("the last complete generation is kept" if RunStore(where).has_checkpoint()
                    else "no generation was complete yet")
            hint = f"{kept}: continue with 'lossevo resume {where}'"
        print(f"lossevo: interrupted{'; ' if hint else ''}{hint}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
