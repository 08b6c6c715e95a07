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

Usage:
    python benchmarks/default_runs.py --seeds 0 1 2 3 4 --out runs/default_runs \\
        --results recipes/results/default_5runs
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
        runs.append({"seed": seed, "wall_seconds": seconds, "summary": results["summary"],
                     "teacher": results["summary"]["teacher"], "exported": results.get("exported", []),
                     "command": " ".join(["python", *command[1:]])})
        s = results["summary"]
        print(f"   seed {seed}: {seconds:.0f} s; baseline {100 * s['baseline_mean']:.2f}%, "
              f"KD {100 * s['kd_mean']:.2f}%, {100 * s['kd_minus_baseline']:+.2f} pt, {s['wins']} wins of {s['pairs']}",
              flush=True)
    table = report(runs)
    print("\n" + table["markdown"])
    if args.results:
        head = (f"# The default command, {len(runs)} runs\n\nCommand: `python benchmarks/default_runs.py "
                f"{' '.join(sys.argv[1:] if argv is None else argv)}` ({time.strftime('%Y-%m-%d')}; one run after "
                f"the other, each timed whole). Test accuracy; teacher {100 * runs[0]['teacher']:.2f}%.\n\n")
        with open(args.results + ".md", "w") as f:
            f.write(head + table["markdown"] + "\n")
        with open(args.results + ".json", "w") as f:
            json.dump({"runs": runs, "totals": table["totals"]}, f, indent=2)
    return 0


def report(runs: list[dict]) -> dict:
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
    lines = ["| run seed | pair | pair seed | baseline | KD | KD - baseline |", "|---|---|---|---|---|---|"]
    for r in runs:
        for p in r["summary"]["per_pair"]:
            lines.append(f"| {r['seed']} | {p['pair']} | {p['seed']} | {100 * p['baseline']:.2f}% | "
                         f"{100 * p['kd']:.2f}% | {100 * p['kd_minus_baseline']:+.2f} pt |")
    lines.append(f"| all | {len(pairs)} pairs | | {100 * totals['baseline_mean']:.2f}% | "
                 f"{100 * totals['kd_mean']:.2f}% | **{totals['kd_minus_baseline_pt']:+.2f} pt** |")
    need = TARGET_WINS * len(pairs)
    lines += ["", f"- KD ahead of its paired baseline in {wins} of {len(pairs)} pairs (target: at least {need:.0f}): "
                  f"{'met' if wins >= need else 'MISSED'}.",
              f"- Mean KD - baseline {totals['kd_minus_baseline_pt']:+.2f} pt (sd over pairs "
              f"{totals['kd_minus_baseline_sd_pt'] or 0:.2f}; target: >= +{TARGET_MEAN_PT} pt): "
              f"{'met' if totals['kd_minus_baseline_pt'] >= TARGET_MEAN_PT else 'MISSED'}."
              + (f" Share of the teacher-baseline gap recovered: {100 * totals['gap_recovered_mean']:.0f}% on "
                 f"average (teacher {100 * runs[0]['teacher']:.2f}%)." if gaps else ""),
              "- Wall time per run, the whole command: " + ", ".join(f"{w:.0f} s" for w in walls) +
              f" (target: <= {TARGET_SECONDS:.0f} s each): "
              f"{'met' if max(walls) <= TARGET_SECONDS else 'MISSED'}."]
    return {"markdown": "\n".join(lines), "totals": totals}


if __name__ == "__main__":
    sys.exit(main())
