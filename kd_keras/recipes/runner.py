"""The one recipe runner: teacher, baseline and KD students, measured side by side.

It serves every task (classification, edge detection, super-resolution):
the task object supplies data, models, the supervised loss and metrics.
Every model trains through `kd_keras.Distiller.fit`; the teacher and the
baseline are the same loop without a teacher. The baseline and every KD
student start from the same initial weights and share the epochs,
optimizer, schedule and augmentation, so the table compares like with like;
a KD student with a `transfer` set also trains on its unlabelled images.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

import keras

from kd_keras.benchmark import report
from kd_keras.training.callbacks import AtomicBackupAndRestore, NaNGuard, TrainingDiverged, run_logs
from kd_keras.config import Config, ModelConfig, to_dict
from kd_keras.distiller import Distiller
from kd_keras.teachers.files import describe, file_teacher_layer
from kd_keras.training.interrupt import StopBetweenSteps
from kd_keras.training.batchnorm_lag import batchnorm_lag_epochs, batchnorm_momentum
from kd_keras.training.precise_bn import PreciseBatchNorm
from kd_keras.training.precision import as_float32
from kd_keras.cli.errors import ensure_space, model_bytes
from kd_keras.cli.lock import OutputLock, check_out_dir
from kd_keras.data.unlabeled import entries as unlabeled_entries
from kd_keras.recipes.preflight import preflight
from kd_keras.recipes.teacher_step import resolve_teacher
from kd_keras.recipes.transfer_set import mixed_splits, transfer_images, transfer_set
from kd_keras.recipes.write import write_results
from kd_keras.recipes.resume import BACKUP, PROGRESS, Progress
from kd_keras.recipes.scores import evaluate_stored
from kd_keras.teachers.load import teacher_file
from kd_keras.teachers.source import TeacherSource, transfer_splits
from kd_keras.training.optim import make_optimizer, make_strategy, worker_out_dir
from kd_keras.recipes.validate import check_models, check_split_sizes, check_teacher_weights, per_class, validate

def save_model(model: keras.Model, path: str) -> int:
    """Saves atomically (no half-written file on failure); returns the size in bytes."""
    tmp = path[: -len(".keras")] + ".partial.keras"
    ensure_space(tmp, model_bytes(model))  # before HDF5 starts a file it could not finish
    model.save(tmp)
    os.replace(tmp, path)
    return os.path.getsize(path)


class Runner:
    """Runs one recipe for a task; see `run`."""

    def __init__(self, cfg: Config, task, out_dir: str, overwrite: bool = False, log=print, command: str = "",
                 export: bool = False):
        self.cfg, self.task, self.out_dir, self.log = cfg, task, out_dir, log
        self.command, self.export = command, export or cfg.report.export
        resumable = cfg.train.resume and os.path.isfile(os.path.join(out_dir, PROGRESS, "config.json"))
        self.manifest = check_out_dir(out_dir, overwrite, run_inputs(cfg), resumable)
        self.overwrite = overwrite
        self.created_out_dir = not os.path.exists(out_dir)
        self.created_parents = []  # the folders above out_dir that this run makes (runs/ of runs/<name>)
        parent = os.path.dirname(os.path.abspath(out_dir))
        while parent and not os.path.exists(parent):
            self.created_parents.append(parent)
            parent = os.path.dirname(parent)
        self.plans = validate(cfg, task, out_dir)
        check_teacher_weights(cfg)
        self.strategy = make_strategy(cfg.train.strategy)  # before any TensorFlow op: multi-worker needs it first
        self.out_dir = worker_out_dir(out_dir, self.strategy)
        if self.out_dir != out_dir:
            self.manifest = check_out_dir(self.out_dir, True)
            self.overwrite = True
        self.lock = OutputLock(self.out_dir)  # before Progress, which may clear an interrupted run (--overwrite)
        self.lock.acquire()
        try:
            self.progress = Progress(self.out_dir, to_dict(cfg), overwrite or self.out_dir != out_dir,
                                     enabled=cfg.train.resume)
        except BaseException:
            self.lock.release()
            self._remove_empty_folders()
            raise
        self.teacher_source = None
        self.seed = cfg.train.seed  # the current pair's seed (pair k: train.seed + k - 1)
        self._steps: list[str] = []

    # ---------------------------------------------------------------- train
    def _fit(self, role: str, name: str, student, teacher=None, losses=(), loss_weights=None,
             student_loss_weight=None, epochs=None, learning_rate=None, warmup_epochs=0, data=None, splits=None,
             tta=None):
        t = self.cfg.train
        epochs = epochs or t.epochs
        # The budget: every student of a pair takes the steps of `epochs` passes over the labelled images. A KD
        # student with a transfer set (`splits`: the labelled and unlabelled images) streams its larger set over
        # the same steps, so that a gain never comes from more training.
        steps = self._steps_per_epoch(self.splits)
        streamed = splits is not None and splits is not self.splits
        passes = math.ceil(epochs * steps / self._steps_per_epoch(splits)) if streamed else epochs
        distiller = Distiller(teacher, student, losses, loss_weights, student_loss_weight,
                              distill_warmup_steps=warmup_epochs * steps, name=f"{name}_distiller")
        distiller.compile(optimizer=make_optimizer(t, learning_rate or t.learning_rate, epochs, steps),
                          loss=self.task.hard_loss(t.hard_loss), metrics=self.task.metrics(),
                          jit_compile=t.jit_compile)
        train_ds, how = self._train_data(distiller, data, splits, tta, passes)
        if streamed:
            train_ds = train_ds.repeat()
            n = self.task.samples_per_epoch(splits, data or self.cfg.data)
            how = (f"{how}; " if how else "") + (f"its {n:,} labelled and unlabelled examples streamed over the "
                                                 f"pair's {epochs * steps:,} steps, "
                                                 f"{epochs * steps / self._steps_per_epoch(splits):.1f} passes")
        guard = NaNGuard(student.weights + [w for layer in distiller.loss_layers for w in layer.weights])
        callbacks = [guard, *run_logs(os.path.join(self.out_dir, "logs"), name)]
        if (self.teacher_info or {}).get("mode") == "views":  # epoch e shows each image its view for e
            callbacks.append(self.teacher_source.stored_views.epoch_callback(passes / epochs))
        backup = None
        if t.resume:
            backup = AtomicBackupAndRestore(self.progress.backup_dir(name))
            callbacks.append(backup)
        precise = PreciseBatchNorm(self.train_ds, t.precise_bn_batches) if t.precise_bn_batches else None
        if precise is not None:
            callbacks.append(precise)
        stop = StopBetweenSteps()  # last: an epoch that ended is logged and backed up before Ctrl-C stops
        callbacks.append(stop)
        self._header(name, f"training {name} ({role}: {student.name}, {student.count_params():,} params, {epochs} epochs"
                 f"{', ' + how if how else ''})")
        if backup is not None and backup.saved_epoch:
            self.log(f"   resuming {name} from its backup after epoch {backup.saved_epoch} of {epochs}")
        lag = batchnorm_lag_epochs(student, steps)
        if lag >= 3 and not getattr(self, "_lag_noted", False):
            self._lag_noted = True
            self.log(f"   note: with {steps} steps an epoch, {student.name}'s BatchNorm moving averages (momentum "
                     f"{batchnorm_momentum(student):g}) lag its weights for about {lag} epochs: validation accuracy "
                     f"reads low until then, while the training accuracy rises; a smaller momentum (small_cnn's "
                     f"bn_momentum = 0.9) reads sooner")
        keras.utils.set_random_seed(self.seed)
        start = time.perf_counter()
        with stop:
            distiller.fit(train_ds, validation_data=self.val_ds, epochs=epochs, callbacks=callbacks,
                          verbose=2, shuffle=False, steps_per_epoch=steps if streamed else None)
        seconds = time.perf_counter() - start
        if precise is not None and precise.used:
            self.log(f"   {name}: BatchNorm statistics recomputed on {precise.used} training batches (precise BN)")
        if guard.diverged_epoch is not None:
            path = os.path.join(self.out_dir, f"{name}.keras")
            save_model(student, path)
            raise TrainingDiverged(
                f"training of {name!r} diverged: the loss became NaN/inf in epoch {guard.diverged_epoch}, "
                f"step {guard.diverged_step}; kept the weights of epoch {guard.last_good_epoch} in {path}; "
                f"lower train.learning_rate and run again with --overwrite (or another --out)."
            )
        return seconds, how

    def _train_data(self, distiller, data=None, splits=None, tta=None, epochs=None):
        """The training batches (with cached teacher outputs or stored views where they apply), and how.

        `data`, `splits` and `tta` are a KD student's own data settings (its `augment`), training images (with
        its transfer set) and teacher-map scales and flip, else the recipe's.
        """
        if self.teacher_source is None:
            self.teacher_source = TeacherSource(self.cfg, self.task, self.splits, self.out_dir, self.log)
        self.teacher_source.seed = self.seed
        # A new pipeline per model: its seeded shuffles and crops then start over, so the baseline and every KD
        # student of a pair see the same batches (a reused dataset would carry on where the previous model left it).
        default_ds = self.task.pipelines(splits or self.splits, data or self.cfg.data, self.seed)[0]
        ds, how, info = self.teacher_source.train_data(distiller, default_ds, data, splits, tta, epochs)
        self.teacher_info = info
        return ds, how

    def _steps_per_epoch(self, splits) -> int:
        return max(1, math.ceil(self.task.samples_per_epoch(splits, self.cfg.data) / self.cfg.data.batch_size))

    def _new_model(self, m, seed: int, weights=None):
        keras.utils.set_random_seed(seed)
        return self.task.create_model(m, self.splits, weights)

    def _trained(self, name: str, train):
        """Loads a model a resumed run already finished, or trains it with `train() -> (model, seconds, extra)`."""
        record = self.progress.done(name)
        if record is not None:
            self._header(name, f"{name}: finished by an earlier run of this command; loaded from {name}.keras")
            path = os.path.join(self.out_dir, f"{name}.keras")
            model = keras.saving.load_model(path, compile=False)
            self.saved[name] = os.path.getsize(path)
            return model, record["seconds"], record.get("extra")
        model, seconds, extra = train()
        self.as_trained[name] = model  # in the training precision: a mixed-precision teacher teaches in it
        model = as_float32(model)  # mixed precision is for training: save, measure and export float32
        self.saved[name] = save_model(model, os.path.join(self.out_dir, f"{name}.keras"))
        self.progress.mark(name, {"seconds": seconds, "extra": extra})
        return model, seconds, extra

    # ------------------------------------------------------------------ run
    def run(self) -> dict:
        policy = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.cfg.train.precision)
        try:
            with self.strategy.scope():
                return self._run()
        except (ValueError, FileNotFoundError):
            self.lock.release()
            self._forget_failed_start()  # a user error is not an interrupted run: the fixed command proceeds
            raise
        finally:
            self._claim_new_files()
            self.lock.release()
            keras.config.set_dtype_policy(policy)

    def _header(self, step: str, text: str) -> None:
        """Logs a step's header, `== [k/n] text`: teacher, baseline, each KD student, timing (a step keeps its k)."""
        if step not in self._steps:
            self._steps.append(step)
        total = 2 + self.cfg.train.pairs * (1 + len(self.plans))
        self.log(f"\n== [{self._steps.index(step) + 1}/{total}] {text}")

    def _claim_out_dir(self) -> None:
        """Removes an earlier run's files on `--overwrite` (exactly its manifest's), then records this run's."""
        if self.overwrite:
            removed = self.manifest.remove_owned()
            self.progress.clear()
            if removed:
                self.log(f"--overwrite: removed the {len(removed)} file(s) of the earlier run in {self.out_dir}")
        self._files_at_start = set(self.manifest.files())
        self.manifest.claim(planned_files(self.cfg, self.plans, self.export))
        done = self.progress.start()
        if done:
            self.log(f"resuming an interrupted run in {self.out_dir}: {', '.join(done)} already finished")

    def _claim_new_files(self) -> None:
        """Adds to the manifest any file that appeared since the run started (its own: the folder was checked)."""
        start = getattr(self, "_files_at_start", None)
        if start is not None:
            new = [f for f in self.manifest.files() if f not in start and not self.manifest.owns(f)]
            if new:
                self.manifest.claim(new)

    def _forget_failed_start(self) -> None:
        """After a user error with no model finished: no progress record, no file and no output folder this run
        made (all of them its own)."""
        if self.progress.finished():
            return
        self.progress.clear()
        if getattr(self, "_files_at_start", None) is not None:
            self._claim_new_files()
            self.manifest.remove_owned()
            try:
                os.remove(self.manifest.path)
            except FileNotFoundError:
                pass
        self._remove_empty_folders()

    def _remove_empty_folders(self) -> None:
        """The output folder, if this run made it, and its empty sub-folders; nothing written by anyone goes."""
        if self.created_out_dir:
            for root, _, _ in sorted(os.walk(self.out_dir), key=lambda w: -len(w[0])):  # deepest first
                try:
                    os.rmdir(root)
                except OSError:
                    pass
            for parent in self.created_parents:  # innermost first; one another process filled stays
                try:
                    os.rmdir(parent)
                except OSError:
                    break

    def _run(self) -> dict:
        cfg = self.cfg
        os.makedirs(self.out_dir, exist_ok=True)
        side, why = self.task.inferred_image_size(cfg) if hasattr(self.task, "inferred_image_size") else (0, "")
        if side:
            self.cfg = cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, image_size=side))
            self.log(f"data: images loaded at {side}x{side} ({why}); set data.image_size to choose")
        self.splits = self.task.load(cfg.data, cfg.train.seed)
        s = self.splits
        check_split_sizes(s, cfg.data)
        probe = teacher_file(cfg.teacher)[1] and getattr(self.task, "sample_labelled", None)
        sample = probe(s) if probe else None
        self.file_teacher = check_models(cfg, self.plans, self._new_model, s.input_shape, self.task, sample,
                                         list(getattr(s, "class_names", None) or ()), s.num_classes or None)
        names = list(getattr(s, "class_names", None) or ())
        shown = f" ({', '.join(map(str, names[:10]))}{', ...' if len(names) > 10 else ''})" if names else ""
        classes = f", {s.num_classes} classes{shown}" if s.num_classes else ""
        self.log(f"data: {s.description}{' (SYNTHETIC)' if s.synthetic else ''}: {s.num_train} train / "
                 f"{s.num_val} val / {s.num_test} test{classes}, images {s.input_shape}")
        for note in [*getattr(s, "notes", ()), per_class(s)]:
            if note:
                self.log(f"data: {note}")
        self.train_ds, self.val_ds, self.test_ds = self.task.pipelines(s, cfg.data, cfg.train.seed)
        transfer = transfer_splits(self.task, s, self.plans, cfg.data, self.log)  # read before anything trains
        students = self._labelled_subset() if cfg.data.labels_per_class else None  # checked before the teacher
        unlabeled = transfer_set(cfg, self.plans, s, self.log)  # read and checked before the teacher runs
        preflight(self)  # every pipeline and model on one batch: a setting that cannot work stops here
        self._claim_out_dir()  # every check passed: only now is an earlier run's output replaced

        rows, self.trained, self.saved, self.as_trained = [], {}, {}, {}
        teacher, seconds, source = self._trained("teacher", lambda: resolve_teacher(self))
        rows.append(self._row("teacher", "teacher", teacher, seconds, None, source))
        if self.file_teacher is not None and self.file_teacher.adapter:
            rows[-1]["adapter"] = self.file_teacher.adapter  # which adapter values were declared, which inferred
        teacher = self.as_trained.get("teacher", teacher)

        if students is not None:
            self._scarce_labels(students, source)
        if unlabeled is not None:
            transfer.update(mixed_splits(cfg, self.plans, self.splits, unlabeled, self.log))
        for k in range(cfg.train.pairs):
            self.seed = cfg.train.seed + k
            self._train_pair(k + 1, rows, teacher, transfer)
        s = self.splits
        for name, model in self.task.reference_models(s, cfg.data).items():
            rows.append(self._row(name, "reference", model, None, None, "not trained"))
        self._measure(rows)
        exported = []
        if self.export:
            from kd_keras.recipes import export_step

            exported = export_step.export_and_measure(self, rows)
        results = self._write(rows, exported)
        self.progress.clear()
        return results

    def _labelled_subset(self):
        """The students' splits: `data.labels_per_class` labelled images per class (`kd_keras.data.subsets`)."""
        from kd_keras.data.subsets import labelled_subset

        return labelled_subset(self.splits, self.cfg.data.labels_per_class, self.cfg.train.seed)

    def _scarce_labels(self, students, teacher_source: str) -> None:
        """From here on the students' training split is `students` (the teacher's was the whole split)."""
        n, per_class = self.splits.num_train, self.cfg.data.labels_per_class
        self.splits = students
        self.train_ds = self.task.pipelines(self.splits, self.cfg.data, self.cfg.train.seed)[0]
        self.teacher_source = None  # its caches are of the teacher's training images
        whose = "the teacher trained on all of them" if teacher_source == "trained by this run" else \
            "the teacher comes from elsewhere"
        self.log(f"data: the students train on {self.splits.num_train:,} of the {n:,} training images "
                 f"({per_class} per class, drawn with seed {self.cfg.train.seed}; data.labels_per_class); {whose}")

    def _train_pair(self, pair: int, rows: list, teacher, transfer: dict) -> None:
        """Trains pair `pair`'s baseline and KD students from seed `self.seed`: one initial weights, one batch order."""
        cfg, s = self.cfg, self.splits
        suffix = "" if pair == 1 else f"_pair{pair}"

        def train_baseline():
            model = self._new_model(cfg.student, self.seed)
            return model, self._fit("baseline", "baseline" + suffix, model)[0], None

        baseline, seconds, _ = self._trained("baseline" + suffix, train_baseline)
        rows.append(self._row("baseline" + suffix, "baseline", baseline, seconds, None))
        rows[-1].update(steps=cfg.train.epochs * self._steps_per_epoch(s), pair=pair, seed=self.seed)  # the budget

        for d, losses in self.plans:
            name = d.name + suffix

            def train_kd(d=d, losses=losses, name=name):
                m = ModelConfig(**d.student) if d.student else cfg.student
                model = self._new_model(m, self.seed)  # same init as the pair's baseline
                seconds, how = self._fit("kd", name, model, teacher, losses, [l.weight for l in d.losses],
                                         d.student_loss_weight, epochs=d.epochs or None,
                                         warmup_epochs=d.warmup_epochs, data=d.data_config(cfg.data),
                                         splits=transfer.get(d.name), tta=(d.teacher_scales, d.teacher_flip))
                return model, seconds, [how, self.teacher_info]

            student, seconds, (how, info) = self._trained(name, train_kd)
            kd = {"entry": d.name, "student_loss_weight": d.student_loss_weight, "own_student": bool(d.student),
                  "epochs": d.epochs or cfg.train.epochs, "warmup_epochs": d.warmup_epochs, "augment": dict(d.augment),
                  "losses": [{"method": l.method, "weight": l.weight, "options": dict(l.options)} for l in d.losses],
                  "teacher_outputs": how, "teacher_cache": info,
                  "transfer": list(d.transfer) or (unlabeled_entries(cfg.data.unlabeled) if d.name in transfer else []),
                  "transfer_images": transfer_images(transfer.get(d.name), s), "labeled_share": d.labeled_share,
                  "labelled_repeats": getattr(transfer.get(d.name), "labelled_repeats", 1),
                  "teacher_scales": list(d.teacher_scales), "teacher_flip": d.teacher_flip}
            rows.append(self._row(name, "kd", student, seconds, kd))
            rows[-1].update(steps=kd["epochs"] * self._steps_per_epoch(s), pair=pair, seed=self.seed)

    def _row(self, name, role, model, seconds, kd, source=None) -> dict:
        size = self.saved.get(name) or save_model(model, os.path.join(self.out_dir, f"{name}.keras"))
        if role == "teacher" and (source or "").startswith("loaded from") and self.cfg.train.teacher_cache != "off":
            folder = self.cfg.train.teacher_cache_dir or os.path.join(self.out_dir, "teacher_cache")
            metrics = evaluate_stored(self.task, model, self.test_ds, self.cfg.report, folder, self.log)
        else:
            metrics = self.task.evaluate(model, self.test_ds, self.cfg.report)
        self.trained[name] = model
        row = {"name": name, "role": role, "arch": model.name, "params": int(model.count_params()),
               "size_bytes": size, "file": f"{name}.keras", **metrics, "train_seconds": seconds, "kd": kd}
        if source:
            row["source"] = source
        if file_teacher_layer(model) is not None:  # the file as it is (one describe: it reads the file's parameters)
            row.update({k: v for k, v in describe(model).items() if k in ("arch", "size_bytes", "params", "file")})
        self.log(f"   {name}: test " + ", ".join(f"{h} {report.format_value(metrics[k], f)}"
                                                  for h, k, f in self.task.columns() if k in metrics))
        return row

    def _measure(self, rows) -> None:
        """Times every model after all training, interleaved, under the same conditions.

        Of paired runs, the first pair is timed: the others are the same architectures.
        """
        rep = self.cfg.report
        rows = [r for r in rows if r.get("pair", 1) == 1]
        self._header("timing", f"timing {len(rows)} models (batch-1 latency, batch-{rep.throughput_batch} throughput)")
        self.timing_shape = self.task.timing_shape(self.splits, rep)
        speed = report.measure_speed({r["name"]: self.trained[r["name"]] for r in rows}, self.timing_shape,
                                     rep.latency_runs, rep.throughput_batch, rep.rounds)
        for r in rows:
            r.update(speed[r["name"]], latency_runs=rep.rounds * rep.latency_runs,
                     throughput_batch=rep.throughput_batch, latency_input_shape=list(self.timing_shape))

    def _write(self, rows, exported=()) -> dict:
        return write_results(self, rows, exported)


def run_inputs(cfg: Config) -> dict:
    """`{key: path}` of the files and folders a recipe reads, which its `--out` must not hold."""
    found = {"data.path": cfg.data.path, "teacher.weights": cfg.teacher.weights, "teacher.model": cfg.teacher.model,
             "student.model": cfg.student.model}
    for d in cfg.distill:
        found[f"the [[distill]] entry {d.name!r}'s student.model"] = (d.student or {}).get("model", "")
    for i, path in enumerate(unlabeled_entries(cfg.data.unlabeled) if isinstance(cfg.data.unlabeled, (str, list))
                             else []):
        found[f"data.unlabeled[{i}]"] = path
    return {k: v for k, v in found.items() if isinstance(v, str) and v and os.path.exists(v)}


def planned_files(cfg: Config, plans: list, export: bool = False) -> list[str]:
    """The names a recipe run writes in its `--out` (files, and folders ending in `/`)."""
    from kd_keras.recipes.export_step import SUFFIX

    names = ["teacher"]
    for k in range(cfg.train.pairs):
        suffix = "" if k == 0 else f"_pair{k + 1}"
        names += ["baseline" + suffix] + [d.name + suffix for d, _ in plans]
    out = [PROGRESS + "/", BACKUP + "/", "results.json", "results.md", "results.png"]
    if not cfg.train.teacher_cache_dir:
        out.append("teacher_cache/")
    for n in names:
        out += [f"{n}.keras", f"logs/{n}.csv", f"logs/{n}/"]
    if export:  # the teacher in fp32, the first pair's KD students in each mode (kd_keras.recipes.export_step)
        out += ["teacher.fp32.tflite"] + [f"{d.name}.{SUFFIX[q]}.tflite" for d, _ in plans
                                          for q in cfg.report.export_quantize]
    return out


def run(cfg: Config, task, out_dir: str, overwrite: bool = False, log=print, command: str = "",
        export: bool = False) -> dict:
    """Runs a recipe end to end and writes `results.json`/`results.md` in `out_dir`.

    Args:
        cfg: the recipe.
        task: a task object from `kd_keras.tasks`.
        out_dir: where models and results go; refused if it holds results.
        overwrite: replace results already in `out_dir`.
        log: where progress lines go.
        command: the command line, recorded with the results.
        export: export the teacher (fp32) and every KD student
            (`report.export_quantize`) to TFLite, and add their measured
            rows (see `kd_keras.recipes.export_step`).
    """
    return Runner(cfg, task, out_dir, overwrite, log, command, export).run()
