"""``refmodel grade``: grade a class of submissions; ``refmodel grade merge``: join shards."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from refmodel.conformance.grade_config import ConfigError, parse_config


def add_subcommands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    g = sub.add_parser(
        "grade", help="build and grade every submission against the model",
        description="refmodel grade SUBMISSIONS_DIR --config grading.toml --out RESULTS_DIR "
        "[--jobs N] [--shard I/N] [--json]   |   refmodel grade merge SHARD_DIR... --out DIR")
    g.add_argument("paths", nargs="+", help="SUBMISSIONS_DIR, or: merge SHARD_DIR...")
    g.add_argument("--config", help="the grading configuration (TOML)")
    g.add_argument("--out", required=True, help="the results directory")
    g.add_argument("--jobs", type=int, default=1)
    g.add_argument("--shard", default=None, help="I/N: grade the I-th of N shares")
    g.add_argument("--json", action="store_true")
    g.add_argument("--no-progress", action="store_true")
    g.set_defaults(fn=cmd_grade)


def _shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r} is not I/N") from None
    if not 1 <= i <= n:
        raise ValueError(f"--shard {text!r}: I must be between 1 and N")
    return i, n


def cmd_grade(args: argparse.Namespace) -> int:
    from refmodel.conformance.grade import grade, merge

    out = Path(args.out)
    if args.paths[0] == "merge":
        dirs = [Path(p) for p in args.paths[1:]]
        missing = [str(d) for d in dirs if not (d / "class.json").is_file()]
        if not dirs or missing:
            print(f"grade merge: not shard results: {', '.join(missing) or '(none given)'}",
                  file=sys.stderr)
            return 2
        try:
            results = merge(dirs, out)
        except ValueError as e:
            print(f"grade merge: {e}", file=sys.stderr)
            return 2
        return _report(results, args)
    if len(args.paths) != 1 or not args.config:
        print("grade: give one SUBMISSIONS_DIR and --config FILE", file=sys.stderr)
        return 2
    subs = Path(args.paths[0])
    if not subs.is_dir():
        print(f"grade: {subs} is not a directory", file=sys.stderr)
        return 2
    try:
        cfg = parse_config(Path(args.config).read_text())
        shard = _shard(args.shard)
    except OSError as e:
        print(f"grade: cannot read the config: {e}", file=sys.stderr)
        return 2
    except ConfigError as e:
        print(f"grade: {args.config}: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"grade: {e}", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print("grade: --jobs must be at least 1", file=sys.stderr)
        return 2
    bad = [p.name for p in subs.iterdir() if not _utf8(p.name)]
    if bad:  # they end up in file names, CSV, Markdown and XML: refuse before grading any
        print(f"grade: submission folder names must be UTF-8, rename: "
              f"{', '.join(ascii(n) for n in bad)}", file=sys.stderr)
        return 2
    if out.exists() and not out.is_dir():
        print(f"grade: --out {out} exists and is not a directory", file=sys.stderr)
        return 2

    def progress(done: int, total: int, name: str) -> None:
        if not args.no_progress and not args.json:
            print(f"\r[{done}/{total}] {name:40.40}", end="", file=sys.stderr, flush=True)

    results = grade(subs, cfg, out, args.jobs, shard, progress)
    if not args.no_progress and not args.json:
        print(file=sys.stderr)
    return _report(results, args)


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes come back as lone surrogates
        return False
    return True


def _report(results: list[dict[str, object]], args: argparse.Namespace) -> int:
    results = sorted(results, key=lambda r: str(r["student"]))
    if args.json:
        print(json.dumps({"students": len(results), "results": results}, indent=1,
                         sort_keys=True))
    else:
        for r in results:
            print(f"{r['student']:30} {r['score']:>6g} / {r['max_score']:<6g} {r['status']:12} "
                  f"{str(r['reason'])[:80]}")
        print(f"{len(results)} submissions graded; results in {args.out}")
    return 0
