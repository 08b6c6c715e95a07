"""Paired runs (`train.pairs`): each KD student against the baseline of its own pair, summarised.

Pair k's baseline and KD students start from the same initial weights and
see the same batches (seed `train.seed + k - 1`), so their difference is
the teacher's effect; the spread over pairs says how far one run can be
trusted.
"""

from __future__ import annotations

import statistics


def summaries(rows: list[dict], metric: str) -> dict:
    """`{entry: summary}` for each KD entry trained on the baseline's student (see `summary`)."""
    teacher = next(r for r in rows if r["role"] == "teacher")[metric]
    baselines = {r["pair"]: r for r in rows if r["role"] == "baseline"}
    out = {}
    for r in rows:
        if r["role"] != "kd" or r["kd"].get("own_student"):
            continue
        out.setdefault(r["kd"]["entry"], []).append(r)
    return {entry: summary(entry, kd_rows, baselines, teacher, metric) for entry, kd_rows in out.items()}


def summary(entry: str, kd_rows: list[dict], baselines: dict, teacher: float, metric: str) -> dict:
    """Means, spreads (sample standard deviations; None for one pair), wins and the gap recovered, per pair too."""
    per_pair = [{"pair": r["pair"], "seed": r["seed"], "baseline": baselines[r["pair"]][metric], "kd": r[metric],
                 "kd_minus_baseline": r[metric] - baselines[r["pair"]][metric]} for r in kd_rows]
    b = [p["baseline"] for p in per_pair]
    k = [p["kd"] for p in per_pair]
    d = [p["kd_minus_baseline"] for p in per_pair]
    b_mean, k_mean = statistics.fmean(b), statistics.fmean(k)
    gap = teacher - b_mean
    return {
        "entry": entry, "metric": metric, "pairs": len(per_pair), "teacher": teacher,
        "baseline_mean": b_mean, "baseline_std": _std(b), "kd_mean": k_mean, "kd_std": _std(k),
        "kd_minus_baseline": k_mean - b_mean, "kd_minus_baseline_std": _std(d),
        "kd_minus_baseline_min": min(d), "kd_minus_baseline_max": max(d),
        "wins": sum(x > 0 for x in d), "ties": sum(x == 0 for x in d), "losses": sum(x < 0 for x in d),
        "gap_recovered": (k_mean - b_mean) / gap if gap > 0 else None,
        "per_pair": per_pair,
    }


def _std(values: list[float]):
    return statistics.stdev(values) if len(values) > 1 else None


def sentence(s: dict, task) -> str:
    """One line: `kd vs baseline over 3 pairs: +2.10 pt (sd 0.40; +1.7 .. +2.5), 3 wins of 3, 41% of the gap`."""
    fmt = task.format_delta
    spread = (f" (sd {fmt(s['kd_minus_baseline_std']).lstrip('+')}; {fmt(s['kd_minus_baseline_min'])} .. "
              f"{fmt(s['kd_minus_baseline_max'])})" if s["pairs"] > 1 else "")
    gap = (f"{100 * s['gap_recovered']:.0f}% of the teacher-baseline gap recovered" if s["gap_recovered"] is not None
           else "no teacher-baseline gap to recover")
    return (f"{s['entry']} vs baseline over {s['pairs']} pair{'s' if s['pairs'] > 1 else ''}: "
            f"{fmt(s['kd_minus_baseline'])}{spread}, {s['wins']} win{'s' if s['wins'] != 1 else ''} of {s['pairs']}, "
            f"{gap}")


def markdown(rows: list[dict], summaries_: dict, metric: str, task) -> list[str]:
    """The paired-runs section of results.md: one row per pair, then each entry's summary line."""
    if not summaries_ or max(s["pairs"] for s in summaries_.values()) < 2:
        return []
    from kd_keras.benchmark.report import format_value

    fmt = task.columns()[0][2]
    entries = list(summaries_)
    header = ["pair", "seed", "baseline", *entries, *[f"{e} - baseline" for e in entries]]
    lines = ["", f"## Paired runs: KD against the baseline of its pair (test {metric})", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    by_pair = {}
    for e, s in summaries_.items():
        for p in s["per_pair"]:
            by_pair.setdefault(p["pair"], {"seed": p["seed"], "baseline": p["baseline"]})[e] = p
    for pair, v in sorted(by_pair.items()):
        cells = [str(pair), str(v["seed"]), format_value(v["baseline"], fmt)]
        cells += [format_value(v[e]["kd"], fmt) if e in v else "-" for e in entries]
        cells += [task.format_delta(v[e]["kd_minus_baseline"]) if e in v else "-" for e in entries]
        lines.append("| " + " | ".join(cells) + " |")
    first = summaries_[entries[0]]
    means = ["mean", "", format_value(first["baseline_mean"], fmt)]
    means += [format_value(summaries_[e]["kd_mean"], fmt) for e in entries]
    means += [task.format_delta(summaries_[e]["kd_minus_baseline"]) for e in entries]
    lines += ["| " + " | ".join(means) + " |", ""]
    lines += [f"- {sentence(s, task)}." for s in summaries_.values()]
    return lines
