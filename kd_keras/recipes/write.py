"""A finished recipe run's report: `results.json`, `results.md` and `results.png` in its output folder."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

import keras
import tensorflow as tf

from kd_keras.benchmark import report
from kd_keras.config import to_dict
from kd_keras.recipes import paired
from kd_keras.recipes.plot import results_png
from kd_keras.version import __version__


def write_results(runner, rows, exported=()) -> dict:
    """Writes `results.json`, `results.md` and `results.png` of a finished run into its output folder."""
    metric, cfg, s = runner.task.metric, runner.cfg, runner.splits
    t_val = next(r for r in rows if r["role"] == "teacher")[metric]
    baselines = {r["pair"]: r for r in rows if r["role"] == "baseline"}
    for r in rows:
        if r["role"] == "kd":
            b_val = baselines[r["pair"]][metric]
            gap = t_val - b_val
            own = r["kd"].get("own_student")
            r["gap_recovered"] = (r[metric] - b_val) / gap if gap > 0 and not own else None
    summaries = paired.summaries(rows, metric)
    results = {
        "recipe": cfg.name, "task": runner.task.name, "metric": metric, "command": runner.command,
        "data": {"description": s.description, "synthetic": s.synthetic, "num_train": s.num_train,
                 "num_val": s.num_val, "num_test": s.num_test, "num_classes": s.num_classes,
                 "input_shape": list(s.input_shape), "skipped_train_images": getattr(s, "skipped", 0)},
        "summary": next(iter(summaries.values()), None),
        "summaries": summaries,
        "models": rows,
        "exported": list(exported),
        "environment": {"date": datetime.datetime.now().isoformat(timespec="seconds"),
                        "kd_keras": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
                        "python": platform.python_version(), "cpus": os.cpu_count(),
                        "gpus": len(tf.config.list_physical_devices("GPU"))},
        "config": to_dict(cfg),
    }
    table = report.markdown_table(rows, runner.task.columns())
    lines = [f"# {cfg.name}: {runner.task.name} results", ""]
    if runner.command:
        lines += [f"Command: `{runner.command}`", ""]
    lines += [f"Data: {s.description}{' (SYNTHETIC)' if s.synthetic else ''}, {s.num_train} train / "
              f"{s.num_val} val / {s.num_test} test images. Metrics are on the test split.", "", table, ""]
    lines += report.model_notes(rows, metric, runner.task.format_delta)
    budget = {r.get("steps") for r in rows if r["role"] in ("baseline", "kd") and not (r.get("kd") or {}).get(
        "own_student")}
    if len(budget) == 1 and None not in budget:
        lines.append(f"- Equal budgets: the baseline and every KD student took {budget.pop():,} optimizer steps "
                     f"({cfg.train.epochs} epochs over the {s.num_train:,} labelled training images, batch "
                     f"{cfg.data.batch_size})" + ("; the transfer set's images are streamed within them." if any(
                         (r.get("kd") or {}).get("transfer_images") for r in rows) else "."))
    lines += paired.markdown(rows, summaries, metric, runner.task)
    lines += ["", *runner.task.report_notes(rows)]
    shape = "x".join(str(d) for d in runner.timing_shape)
    lines += ["", f"Latency: median of {cfg.report.rounds * cfg.report.latency_runs} batch-1 calls "
                  f"on {shape} inputs ({cfg.report.rounds} interleaved rounds, "
                  f"after all training), Keras on {os.cpu_count()} CPU cores; throughput: fastest batch of "
                  f"{cfg.report.throughput_batch}."]
    if exported:
        from kd_keras.recipes import export_step

        lines += export_step.markdown(list(exported), runner.task)
    lines += ["", "![results: metric against latency and size, and training curves](results.png)"]
    md = "\n".join(lines) + "\n"
    results_png(rows, metric, runner.task.metric_label or metric, runner.out_dir,
                f"{cfg.name}: {s.description}{' (SYNTHETIC)' if s.synthetic else ''}", summaries,
                runner.task.format_delta)
    report.write_json_atomic(os.path.join(runner.out_dir, "results.json"), results)
    report.write_text_atomic(os.path.join(runner.out_dir, "results.md"), md)
    runner.log("\n" + md)
    runner.log(f"results and models saved in {Path(runner.out_dir).resolve()}")
    return results
