"""The checks of `kd_keras.Distiller`'s arguments, each failing in one line that names the argument and the fix."""

from __future__ import annotations

import keras

from kd_keras.losses import create_loss


def checked_arguments(teacher, student, distillation_losses, distillation_loss_weights, student_loss_weight,
                      distill_warmup_steps, losses=None, loss_weights=None):
    """`(losses, loss_weights, student_loss_weight)` as the Distiller keeps them, after every check.

    Accepts Keras' spellings (`distillation_losses` as one loss or a list,
    `distillation_loss_weights`) and kd_keras' older ones (`losses`,
    `loss_weights`), not both; registered loss names become loss objects.

    Raises:
        ValueError: a model that is not a `keras.Model` (or no student), a
            loss that is not a distillation loss, a student_loss_weight
            outside [0, 1], a teacher without losses or losses without a
            teacher, weights that do not match the losses.
    """
    distillation_losses = _one_spelling("distillation_losses", distillation_losses, "losses", losses)
    distillation_loss_weights = _one_spelling("distillation_loss_weights", distillation_loss_weights,
                                              "loss_weights", loss_weights)
    if student is None and isinstance(teacher, keras.Model) and not distillation_losses:
        raise ValueError("no student given: Distiller takes the teacher first, as keras.distillation.Distiller "
                         "does; for the baseline pass Distiller(teacher=None, student=model).")
    if not isinstance(student, keras.Model):
        raise ValueError(f"student must be a keras.Model, got {type(student).__name__}.")
    if teacher is not None and not isinstance(teacher, keras.Model):
        raise ValueError(f"teacher must be a keras.Model or None, got {type(teacher).__name__}.")
    if teacher is student:
        raise ValueError(f"teacher and student are the same model object ({student.name!r}); pass a separate student, "
                         f"e.g. keras.models.clone_model(teacher) or a smaller model.")
    for role, model in (("teacher", teacher), ("student", student)):
        layer = ends_in_softmax(model)
        if layer:
            fix = ("load it with kd_keras.load_teacher(path, input_shape), which reads its probabilities as logits "
                   "(and adapts its input size and value range), or rebuild it without the final softmax "
                   "(activation=None)" if role == "teacher" else "rebuild it without the final softmax (activation=None)")
            raise ValueError(f"the {role} {model.name!r} ends in a softmax (layer {layer!r}), but distillation losses "
                             f"and the hard-label loss read logits; {fix}.")
    if distillation_losses is None:
        distillation_losses = []
    elif not isinstance(distillation_losses, (list, tuple)):  # one loss, as the parent takes it
        distillation_losses = [distillation_losses]
    losses = [create_loss(l, kind="distill") if isinstance(l, str) else l for l in distillation_losses]
    for loss in losses:
        if not isinstance(loss, keras.distillation.DistillationLoss):
            raise ValueError(f"distillation_losses must be DistillLoss objects or registered names, got {loss!r}.")

    if student_loss_weight is None:
        student_loss_weight = 0.5 if teacher is not None else 1.0
    if isinstance(student_loss_weight, bool) or not isinstance(student_loss_weight, (int, float)):
        raise ValueError(f"student_loss_weight must be a number in [0, 1], got {student_loss_weight!r}.")
    if not 0.0 <= student_loss_weight <= 1.0:
        raise ValueError(f"student_loss_weight must be between 0.0 and 1.0, got {student_loss_weight}.")
    if teacher is None and student_loss_weight == 0.0:
        raise ValueError("student_loss_weight=0 trains the student on the teacher's outputs alone, but no teacher "
                         "was given; pass a teacher, or student_loss_weight=1.0 for the baseline.")
    if teacher is None and (losses or student_loss_weight != 1.0):
        raise ValueError(
            "a distiller without a teacher trains the baseline: pass no distillation_losses and "
            f"student_loss_weight=1.0 (got {len(losses)} loss(es), student_loss_weight={student_loss_weight})."
        )
    if teacher is not None and not losses:
        raise ValueError("a teacher was given but no distillation losses; pass distillation_losses=\"kd\" "
                         "(or a list of losses), or drop the teacher.")

    if distillation_loss_weights is None:
        distillation_loss_weights = [1.0] * len(losses)
    loss_weights = [float(w) for w in distillation_loss_weights]
    if len(loss_weights) != len(losses):
        raise ValueError(f"distillation_loss_weights has {len(loss_weights)} entries for {len(losses)} "
                         f"distillation losses; give one weight per loss.")
    for w in loss_weights:
        if not w >= 0.0:
            raise ValueError(f"each distillation loss weight must be >= 0, got {w}.")
    if isinstance(distill_warmup_steps, bool) or not isinstance(distill_warmup_steps, int) \
            or distill_warmup_steps < 0:
        raise ValueError(f"distill_warmup_steps must be an integer >= 0 (0: off), got {distill_warmup_steps!r}.")

    return losses, loss_weights, float(student_loss_weight)


def symbolic(model: keras.Model, what: str):
    """`model.inputs` or `model.outputs`, or None for a subclassed or not yet built model (they have none)."""
    try:
        return getattr(model, what)
    except (AttributeError, ValueError):
        return None


def _one_spelling(name: str, value, alias: str, alias_value):
    """The value of an argument given as `name` (Keras' spelling) or `alias` (kd_keras' older one), not both."""
    if alias_value is None:
        return value
    if value is not None:
        raise ValueError(f"both {name} and {alias} were given; pass {name} only ({alias} is its older spelling).")
    return alias_value


def check_same_outputs(teacher: keras.Model, student: keras.Model):
    t_out, s_out = symbolic(teacher, "outputs"), symbolic(student, "outputs")
    t = t_out[0].shape if t_out else None
    s = s_out[0].shape if s_out else None
    if t is None or s is None:  # subclassed models: the losses check the outputs at the first step
        return
    if len(t) != len(s) or any(a is not None and b is not None and a != b for a, b in zip(t, s)):
        what = "classes" if len(t) == 2 and len(s) == 2 else "output shape"
        tv, sv = (t[-1], s[-1]) if what == "classes" else (tuple(t), tuple(s))
        raise ValueError(
            f"teacher and student outputs do not match: teacher {teacher.name!r} has {tv} {what}, "
            f"student {student.name!r} has {sv}; build both with the same num_classes."
        )


def ends_in_softmax(model) -> str:
    """The name of the layer that applies a softmax to a Functional/Sequential model's output ("" if none)."""
    outputs = symbolic(model, "outputs") if model is not None else None
    if not outputs or len(outputs) != 1:
        return ""
    history = getattr(outputs[0], "_keras_history", None)
    layer = history[0] if history else None
    if isinstance(layer, keras.layers.Softmax):
        return layer.name
    activation = getattr(layer, "activation", None)
    if activation is not None and getattr(activation, "__name__", "") == "softmax":
        return layer.name
    return ""
