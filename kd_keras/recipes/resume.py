"""What a recipe run has finished, so the same command resumes it after a kill.

A run trains several models in turn (teacher, baseline, KD students). Each
finished model is saved (atomically) and recorded in `<out>/.progress/`;
the model in training is backed up every epoch in `<out>/.backup/<name>/`
(`kd_keras.training.callbacks.AtomicBackupAndRestore`). Running the same command
again loads the finished models and continues the interrupted one from
its last finished epoch. The record holds the recipe's config, so a
different config in the same output dir is refused instead of mixed in.
"""

from __future__ import annotations

import json
import os
import shutil

from kd_keras.benchmark import report

PROGRESS = ".progress"
BACKUP = ".backup"


class Progress:
    """The finished models of one run in `out_dir`.

    Args:
        out_dir: the run's output dir.
        config: the recipe as plain data (`kd_keras.config.to_dict`).
        overwrite: start afresh: an interrupted run's progress of another
            config is not refused (the runner removes it with the rest of
            the earlier run's files, `kd_keras.cli.manifest`).
        enabled: `train.resume`; when off, nothing is recorded or resumed.

    Raises:
        ValueError: `out_dir` holds an interrupted run of another config.
    """

    def __init__(self, out_dir: str, config: dict, overwrite: bool = False, enabled: bool = True):
        self.folder = os.path.join(out_dir, PROGRESS)
        self.backup_root = os.path.join(out_dir, BACKUP)
        self.out_dir, self.config, self.enabled = out_dir, config, enabled
        meta = os.path.join(self.folder, "config.json")  # on --overwrite the runner removes it, once its checks pass
        if enabled and not overwrite and os.path.isfile(meta):
            with open(meta) as f:
                held = json.load(f)
            if held != json.loads(json.dumps(config)):
                keys = differing_keys(held, json.loads(json.dumps(config)))
                finished = [n for n in self._names() if self.done(n) is not None]
                raise ValueError(
                    f"output dir {out_dir!r} holds an interrupted run of another config (it differs in "
                    f"{', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''}; finished: "
                    f"{', '.join(finished) or 'nothing yet'}): to resume that run, give its settings again; to "
                    f"discard it, pass --overwrite; to keep it, choose another --out."
                )

    def start(self) -> list[str]:
        """Records the config; returns the names of models already finished."""
        if not self.enabled:
            return []
        os.makedirs(self.folder, exist_ok=True)
        report.write_json_atomic(os.path.join(self.folder, "config.json"), self.config)
        return [n for n in self._names() if self.done(n) is not None]

    def _names(self) -> list[str]:
        return sorted(f[: -len(".json")] for f in os.listdir(self.folder) if f.endswith(".json") and f != "config.json")

    def done(self, name: str) -> dict | None:
        """The record of a finished model (its training seconds, ...), or None."""
        path = os.path.join(self.folder, f"{name}.json")
        if not self.enabled or not os.path.isfile(path) or not os.path.isfile(os.path.join(self.out_dir,
                                                                                            f"{name}.keras")):
            return None
        with open(path) as f:
            return json.load(f)

    def mark(self, name: str, record: dict) -> None:
        """Records that `name` finished (its `.keras` file is saved)."""
        if self.enabled:
            report.write_json_atomic(os.path.join(self.folder, f"{name}.json"), record)

    def backup_dir(self, name: str) -> str:
        return os.path.join(self.backup_root, name)

    def finished(self) -> list[str]:
        """The models this folder holds as finished (for this run or an earlier one)."""
        if not self.enabled or not os.path.isdir(self.folder):
            return []
        return [n for n in self._names() if self.done(n) is not None]

    def clear(self) -> None:
        """Forgets the progress and backups (after the results are written, or on --overwrite)."""
        shutil.rmtree(self.folder, ignore_errors=True)
        shutil.rmtree(self.backup_root, ignore_errors=True)


def differing_keys(a, b, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two nested config dicts."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return [prefix or "(the whole config)"] if a != b else []
    out = []
    for k in sorted(set(a) | set(b), key=str):
        out += differing_keys(a.get(k), b.get(k), f"{prefix}{k}" if not prefix else f"{prefix}.{k}")
    return out
