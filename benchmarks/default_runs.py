"""The default command, run several times: does KD beat its paired baseline, and within 5 minutes?

Runs `python -m kd_keras.recipes.classification` (the default recipe, or
`--config`) once per seed of `--seeds` (`--set train.seed=S`: the split, the
labelled subset and the pairs' seeds S, S+1, ...), one after the other, each
in its own process, timed whole (start-up, teacher load, views, every pair,
export). Then it prints every pair and the totals against the issue's targets:
KD ahead of its paired baseline in at least 13 of 15 pairs, by at least
+1.5 pt on average, and each run within 5 minutes. Missed targets are said in
the output; the exit code is 0 unless a run fails (1) or the input is bad (2).

A finished run is reused (its `results.json` and recorded wall time), so the
same command continues after an interruption.

Another recipe's targets are given with `--entry` (the KD entry compared with
its paired baseline; default the first), `--target-wins` (a share of the
pairs), `--target-mean-pt`, `--target-seconds` and `--target-accuracy` (the
entry's mean test accuracy).

Usage:
    python benchmarks/default_runs.py --seeds 0 1 2 3 4 --out runs/default_runs \\
        --results recipes/results/default_5runs
    python benchmarks/default_runs.py --config recipes/fashion_mnist_small_transfer.toml --entry kd_transfer \\
        --target-wins 1 --target-mean-pt 5 --target-accuracy 0.87 --target-seconds 600 \\
        --out runs/transfer_runs --results recipes/results/fashion_mnist_small_transfer_5runs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

TARGET_WINS, TARGET_MEAN_PT, TARGET_SECONDS = 13 / 15, 1.5, 300.0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--config", default="", help="a recipe (default: the default command's)")
    p.add_argument("--out", default="runs/default_runs", help="one sub-folder per seed")
    p.add_argument("--results", default="", help="write <results>.md and <results>.json")
    p.add_argument("--entry", default="", help="the KD entry against its baseline (default: the recipe's first)")
    p.add_argument("--target-wins", type=float, default=TARGET_WINS, help="share of pairs KD must win")
    p.add_argument("--target-mean-pt", type=float, default=TARGET_MEAN_PT, help="mean KD - baseline, in pt")
    p.add_argument("--target-seconds", type=float, default=TARGET_SECONDS, help="wall time of each run")
    p.add_argument("--target-accuracy", type=float, default=0.0, help="the entry's mean test accuracy (0: none)")
    args = p.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds):
        print(f"error: --seeds must not repeat, got {args.seeds}", file=sys.stderr)
        return 2
    runs = []
    for seed in args.seeds:
        out = os.path.join(args.out, f"seed{seed}")
        record = os.path.join(out, "wall_seconds.json")
        command = [sys.executable, "-m", "kd_keras.recipes.classification", *(["--config", args.config] if
                   args.config else []), "--set", f"train.seed={seed}", "--out", out]
        if not (os.path.isfile(record) and os.path.isfile(os.path.join(out, "results.json"))):
            print(f"== seed {seed}: {' '.join(command[1:])}", flush=True)
            start = time.perf_counter()
            proc = subprocess.run(command + ["--overwrite"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True)
            seconds = time.perf_counter() - start
            if proc.returncode != 0:
                print(f"error: seed {seed} failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}",
                      file=sys.stderr)
                return 1
            with open(record, "w") as f:
                json.dump({"seconds": seconds}, f)
        with open(record) as f:
            seconds = json.load(f)["seconds"]
        with open(os.path.join(out, "results.json")) as f:
            results = json.load(f)
        entry = args.entry or next(iter(results["summaries"]))
        if entry not in results["summaries"]:
            print(f"error: --entry {entry!r} is not a KD entry of the recipe ({', '.join(results['summaries'])})",
                  file=sys.stderr)
            return 2
        s = results["summaries"][entry]
        runs.append({"seed": seed, "wall_seconds": seconds, "entry": entry, "summary": s,
                     "summaries": results["summaries"], "teacher": s["teacher"],
                     "exported": results.get("exported", []), "command": " ".join(["python", *command[1:]])})
        print(f"   seed {seed}: {seconds:.0f} s; baseline {100 * s['baseline_mean']:.2f}%, "
              f"KD {100 * s['kd_mean']:.2f}%, {100 * s['kd_minus_baseline']:+.2f} pt, {s['wins']} wins of {s['pairs']}",
              flush=True)
    table = report(runs, args)
    print("\n" + table["markdown"])
    if args.results:
        what = f"`--config {args.config}`" if args.config else "The default command"
        head = (f"# {what}, {len(runs)} runs\n\nCommand: `python benchmarks/default_runs.py "
                f"{' '.join(sys.argv[1:] if argv is None else argv)}` ({time.strftime('%Y-%m-%d')}; one run after "
                f"the other, each timed whole). Test accuracy; teacher {100 * runs[0]['teacher']:.2f}%.\n\n")
        with open(args.results + ".md", "w") as f:
            f.write(head + table["markdown"] + "\n")
        with open(args.results + ".json", "w") as f:
            json.dump({"runs": runs, "totals": table["totals"]}, f, indent=2)
    return 0


def report(runs: list[dict], args=None) -> dict:
    target_wins = getattr(args, "target_wins", TARGET_WINS)
    target_mean = getattr(args, "target_mean_pt", TARGET_MEAN_PT)
    target_seconds = getattr(args, "target_seconds", TARGET_SECONDS)
    target_accuracy = getattr(args, "target_accuracy", 0.0)
    pairs = [p for r in runs for p in r["summary"]["per_pair"]]
    diffs = [100 * p["kd_minus_baseline"] for p in pairs]
    wins = sum(d > 0 for d in diffs)
    walls = [r["wall_seconds"] for r in runs]
    gaps = [r["summary"]["gap_recovered"] for r in runs if r["summary"]["gap_recovered"] is not None]
    totals = {"runs": len(runs), "pairs": len(pairs), "wins": wins, "kd_minus_baseline_pt": statistics.fmean(diffs),
              "kd_minus_baseline_sd_pt": statistics.stdev(diffs) if len(diffs) > 1 else None,
              "baseline_mean": statistics.fmean(p["baseline"] for p in pairs),
              "kd_mean": statistics.fmean(p["kd"] for p in pairs),
              "gap_recovered_mean": statistics.fmean(gaps) if gaps else None,
              "wall_seconds_max": max(walls), "wall_seconds_mean": statistics.fmean(walls)}
    name = runs[0].get("entry") or "KD"
    lines = [f"| run seed | pair | pair seed | baseline | {name} | {name} - baseline |", "|---|---|---|---|---|---|"]
    for r in runs:
        for p in r["summary"]["per_pair"]:
            lines.append(f"| {r['seed']} | {p['pair']} | {p['seed']} | {100 * p['baseline']:.2f}% | "
                         f"{100 * p['kd']:.2f}% | {100 * p['kd_minus_baseline']:+.2f} pt |")
    lines.append(f"| all | {len(pairs)} pairs | | {100 * totals['baseline_mean']:.2f}% | "
                 f"{100 * totals['kd_mean']:.2f}% | **{totals['kd_minus_baseline_pt']:+.2f} pt** |")
    need = target_wins * len(pairs)
    lines += ["", f"- KD ahead of its paired baseline in {wins} of {len(pairs)} pairs (target: at least {need:.0f}): "
                  f"{'met' if wins >= need else 'MISSED'}.",
              f"- Mean KD - baseline {totals['kd_minus_baseline_pt']:+.2f} pt (sd over pairs "
              f"{totals['kd_minus_baseline_sd_pt'] or 0:.2f}; target: >= +{target_mean} pt): "
              f"{'met' if totals['kd_minus_baseline_pt'] >= target_mean else 'MISSED'}."
              + (f" Share of the teacher-baseline gap recovered: {100 * totals['gap_recovered_mean']:.0f}% on "
                 f"average (teacher {100 * runs[0]['teacher']:.2f}%)." if gaps else ""),
              "- Wall time per run, the whole command: " + ", ".join(f"{w:.0f} s" for w in walls) +
              f" (target: <= {target_seconds:.0f} s each): "
              f"{'met' if max(walls) <= target_seconds else 'MISSED'}."]
    if target_accuracy:
        lines.append(f"- {runs[0]['entry']}'s mean test accuracy {100 * totals['kd_mean']:.2f}% (target: >= "
                     f"{100 * target_accuracy:.2f}%): {'met' if totals['kd_mean'] >= target_accuracy else 'MISSED'}.")
    others = sorted({e for r in runs for e in r.get("summaries", {})} - {runs[0].get("entry")})
    for e in others:
        ps = [p for r in runs for p in r["summaries"][e]["per_pair"]]
        d = [100 * p["kd_minus_baseline"] for p in ps]
        lines.append(f"- {e} (for comparison): {100 * statistics.fmean(p['kd'] for p in ps):.2f}%, "
                     f"{statistics.fmean(d):+.2f} pt over its paired baseline, {sum(x > 0 for x in d)} wins of "
                     f"{len(d)}.")
    return {"markdown": "\n".join(lines), "totals": totals}


if __name__ == "__main__":
    sys.exit(main())
