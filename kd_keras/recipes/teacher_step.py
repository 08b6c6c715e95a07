"""The run's teacher: where it comes from (a teacher file, shipped or published weights, a weights file, or trained
in the run), checked against the data before any student learns from it."""

from __future__ import annotations

from kd_keras.config import find_file
from kd_keras.models import pretrained_weights
from kd_keras.models.registry import shipped_weights
from kd_keras.recipes.validate import check_teacher_weights
from kd_keras.teachers.files import describe


def resolve_teacher(runner):
    """`(model, seconds, source)` of the run's teacher: its file as opened, its shipped or published weights, a
    weights file, or trained in the run (`runner`: the `Runner`)."""
    tc, loaded = runner.cfg.teacher, runner.file_teacher
    if loaded is not None and loaded.format == "keras":
        model = loaded.model
        runner._header("teacher", f"teacher: the Keras file {loaded.path} ({model.name}, "
                                f"{model.count_params():,} params)")
        for note in loaded.notes:
            runner.log(f"   teacher: {note}")
        notes = "".join(f"; {n}" for n in loaded.notes)
        return loaded_teacher(runner, model, f"{loaded.path}{notes}")
    if loaded is not None:
        about = describe(loaded.model)
        runner._header("teacher", f"teacher: the file {about['arch']}, run by {about['runtime']}")
        return loaded_teacher(runner, loaded.model, f"{loaded.path}, run by {about['runtime']}"
                                    + "".join(f"; {n}" for n in loaded.notes[1:]))
    if tc.weights in pretrained_weights(tc.model):
        kind = "shipped" if tc.weights in shipped_weights(tc.model) else "published"
        runner._header("teacher", f"teacher: {tc.model} with its {kind} {tc.weights!r} weights")
        return loaded_teacher(runner, runner._new_model(tc, runner.cfg.train.seed), f"its {kind} {tc.weights!r} weights")
    if tc.weights and tc.weights != "imagenet":
        path = find_file(tc.weights)
        if path.exists():
            runner._header("teacher", f"teacher: loading {tc.model} from {path}")
            return loaded_teacher(runner, runner._new_model(tc, runner.cfg.train.seed, weights=str(path)), tc.weights)
        check_teacher_weights(runner.cfg)  # checked before the data; again in case the file went since
        runner.log(f"\n== teacher weights {tc.weights} not found: training the teacher")
        model = runner._new_model(tc, runner.cfg.train.seed + 1, weights="")
    else:
        model = runner._new_model(tc, runner.cfg.train.seed + 1)
    seconds, _ = runner._fit("teacher", "teacher", model, epochs=tc.epochs or None,
                           learning_rate=tc.learning_rate or None)
    return model, seconds, "trained by this run"

def loaded_teacher(runner, model, source: str):
    """A loaded teacher as it is (checked against the data), or fine-tuned on it when `teacher.finetune` says so."""
    tc = runner.cfg.teacher
    if not tc.finetune:
        why = runner.task.chance_check(model, runner.val_ds, runner.splits) if tc.check_fit else ""
        if why and runner.file_teacher is not None and runner.file_teacher.notes:
            why += f" as adapted ({'; '.join(runner.file_teacher.notes)})"
        if why:
            raise ValueError(f"the teacher loaded from {source} {why}; check teacher.weights and the data, or "
                             f"set teacher.check_fit=false to use it anyway.")
        unjudged = getattr(runner.task, "chance_unjudged", None)
        if tc.check_fit and unjudged is not None and unjudged(runner.splits):
            runner.log(f"   teacher: its fit to the data is not fully checked: {unjudged(runner.splits)}")
        return model, None, f"loaded from {source}"
    model.trainable = True  # a loaded model file may have been saved frozen
    seconds, _ = runner._fit("teacher", "teacher", model, epochs=tc.epochs or None,
                           learning_rate=tc.learning_rate or None)
    return model, seconds, f"fine-tuned from {source}"
