"""What a teacher file wants, inferred from the file and from labelled images when the user does not declare it.

A teacher exported from PyTorch takes NCHW images, normalised outside the
model, at its own size; a Keras one takes NHWC images in any of the value
ranges `keras.applications` and torchvision use. kd_keras feeds raw 0-255
NHWC RGB batches, so each teacher file gets the same inference:

- **layout** from the file's input shape (`infer_layout`);
- **value range** by an accuracy probe on labelled training images, over
  `VALUE_RANGES` (`probe_ranges`);
- **class order**: a teacher far below chance whose predictions map one to
  one onto the labels has its classes in another order (`order_analysis`).

Every value declared under `teacher.adapter` wins; each choice is a
sentence for the report, saying whether it was declared or inferred.
"""

from __future__ import annotations

import numpy as np

IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
VALUE_RANGES = {  # the preprocessing modes of keras.applications and torchvision, as adapter fields
    "raw 0-255": {},
    "[0, 1]": {"scale": 1 / 255},
    "[-1, 1]": {"scale": 1 / 127.5, "mean": [1.0]},
    "ImageNet mean/std on [0, 1] (torch)": {"scale": 1 / 255, "mean": IMAGENET_MEAN, "std": IMAGENET_STD},
    "BGR minus ImageNet means (caffe)": {"channels": "bgr", "mean": [103.939, 116.779, 123.68]},
}
RANGE_KEYS = ("scale", "mean", "std", "channels")
UNSET = {"layout": "auto", "size": [], "scale": "auto", "mean": [], "std": [], "channels": "auto", "output": "auto",
         "class_order": []}  # AdapterConfig's defaults: nothing declared
NEUTRAL = {"scale": 1.0, "mean": [], "std": [], "channels": "rgb"}  # an undeclared key of a declared range
PROBE_IMAGES = 256


def declared(adapter: dict) -> dict:
    """The adapter keys the user set (those that differ from `UNSET`)."""
    return {k: v for k, v in adapter.items() if k in UNSET and _norm(v) != _norm(UNSET[k])}


def declared_range(adapter: dict) -> dict:
    """The value range as declared: its set keys and neutral values for the others; {} when none is set."""
    set_keys = {k: v for k, v in declared(adapter).items() if k in RANGE_KEYS}
    return {**NEUTRAL, **set_keys} if set_keys else {}


def infer_layout(shape) -> tuple[str, str]:
    """`(layout, sentence)` from a file's per-example input shape (None for a free dimension).

    Channels-first when the axis after the batch is 1 or 3 and the last is
    not; channels-last in the mirror case; anything else (3x3x3, free
    dimensions on both sides) keeps "nhwc" and says so.
    """
    shape = tuple(shape)
    shown = "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"
    if len(shape) == 3 and shape[0] in (1, 3) and shape[-1] not in (1, 3):
        return "nchw", f"layout nchw inferred from the file's input {shown} per image (channels first)"
    if len(shape) == 3 and shape[-1] in (1, 3) and shape[0] not in (1, 3):
        return "nhwc", f"layout nhwc inferred from the file's input {shown} per image (channels last)"
    return "nhwc", (f"layout nhwc kept: the file's input {shown} per image does not tell which axis holds the "
                    f"channels; declare teacher.adapter.layout if it is \"nchw\"")


def chance_bar(n: int, classes: int) -> float:
    """Accuracy clearly better than chance on `n` images: chance plus two standard errors."""
    chance = 1.0 / classes
    return chance + 2.0 * np.sqrt(chance * (1.0 - chance) / max(n, 1))


def too_few(n: int, classes: int) -> bool:
    """Whether `n` images cannot tell a weak teacher from chance (two standard errors above 0.2)."""
    chance = 1.0 / classes
    return 2.0 * np.sqrt(chance * (1.0 - chance) / max(n, 1)) > 0.2


def probe_ranges(forward, images, channels: int, names=None) -> dict:
    """`{range name: logits}` of the teacher on `images` under each candidate value range.

    Args:
        forward: `fn(range_fields, images) -> logits` (the caller's adapter
            and runtime).
        images: raw images of the sample.
        channels: the channels the teacher takes; three-channel statistics
            are skipped for a one-channel teacher.
        names: the candidates to try (default: all of `VALUE_RANGES`).
    """
    out = {}
    for name in names or VALUE_RANGES:
        fields = VALUE_RANGES[name]
        if channels != 3 and len(fields.get("mean", [])) == 3:
            continue
        out[name] = np.asarray(forward({**NEUTRAL, **fields}, images))
    return out


def top_ranges(logits: dict, labels, classes: int, order_declared: bool) -> list:
    """The candidates the teacher is most accurate under (several when tied), in the listed order.

    Without a declared class order the accuracy is counted under the best
    one-to-one reading of the teacher's outputs, so that a teacher with its
    classes in another order still finds its value range (and is then refused
    with that order).
    """
    def score(name):
        pred = logits[name].argmax(-1)
        plain = float(np.mean(pred == labels))
        return (plain if order_declared else order_analysis(pred, labels, classes)[1]), plain

    scores = {name: score(name) for name in logits}
    best = max(scores.values())
    return [name for name in logits if scores[name] == best]


def median_margin(logits) -> float:
    """The median gap between the largest and second-largest logit: how extreme a teacher's scores are."""
    top = np.sort(np.asarray(logits, np.float64), axis=-1)[:, -2:]
    return float(np.median(top[:, 1] - top[:, 0]))


def order_analysis(pred, labels, classes: int) -> tuple[list, float]:
    """`(order, matched accuracy)`: the one-to-one reading of the teacher's outputs that fits the labels best.

    `order[j]` is the data class that the teacher's output `j` matches
    (Hungarian assignment on the confusion matrix); `matched` is the accuracy
    under that reading.
    """
    from scipy.optimize import linear_sum_assignment

    pred, labels = np.asarray(pred, int), np.asarray(labels, int)
    confusion = np.zeros((classes, classes), np.int64)  # rows: data classes; columns: teacher outputs
    np.add.at(confusion, (labels, np.clip(pred, 0, classes - 1)), 1)
    rows, cols = linear_sum_assignment(-confusion)
    order = [0] * classes
    for r, c in zip(rows, cols):
        order[c] = int(r)
    return order, float(confusion[rows, cols].sum() / max(len(labels), 1))


def another_order(pred, labels, classes: int) -> tuple[list, float] | None:
    """`(order, matched accuracy)` when the teacher's classes clearly come in another order than the data's, else None.

    Another order: the best one-to-one reading is not the identity, is clearly
    better than chance, beats the outputs as ordered by more than 0.1 and
    three standard errors, and is a permutation of the confusion matrix
    (each class and its matched output are each other's most frequent).
    """
    n = len(labels)
    order, matched = order_analysis(pred, labels, classes)
    plain = float(np.mean(np.asarray(pred) == np.asarray(labels)))
    if order == list(range(classes)) or matched <= chance_bar(n, classes) or not _mutual(pred, labels, classes, order):
        return None
    margin = max(0.1, 3.0 * np.sqrt(max(matched * (1 - matched), 1.0 / n) / n))
    return (order, matched) if matched - plain > margin else None


def _mutual(pred, labels, classes: int, order) -> bool:
    """Whether the confusion matrix is a permutation: each class seen in the sample is mostly predicted as its
    matched output, and that output is mostly given to it."""
    pred, labels = np.asarray(pred, int), np.asarray(labels, int)
    confusion = np.zeros((classes, classes), np.int64)
    np.add.at(confusion, (labels, np.clip(pred, 0, classes - 1)), 1)
    for output, cls in enumerate(order):
        if confusion[cls].sum() and (confusion[cls].argmax() != output or confusion[:, output].argmax() != cls):
            return False
    return True


def resolve_class_order(values, class_names, classes: int) -> list[int]:
    """`teacher.adapter.class_order` (the teacher's classes in output order, as the data's names or indices) as
    data-class indices, checked to be a permutation of the data's classes.

    Raises:
        ValueError: a value that is not a class of the data, a repeat, or
            another number of classes; the message echoes the value.
    """
    names = [str(c) for c in class_names] if class_names else [str(i) for i in range(classes)]
    values = list(values)
    where = "teacher.adapter.class_order"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        order = values
        bad = [v for v in values if not 0 <= v < classes]
    elif all(isinstance(v, str) for v in values):
        bad = [v for v in values if v not in names]
        order = [names.index(v) for v in values if v in names]
    else:
        raise ValueError(f"{where} must list the teacher's classes in its output order, as the data's class names "
                         f"or as indices, got {values!r}.")
    if bad:
        raise ValueError(f"{where} names {', '.join(map(repr, bad[:5]))}, not among the data's {classes} classes "
                         f"({', '.join(names[:10])}{', ...' if len(names) > 10 else ''}); fix {where}.")
    if len(order) != classes or sorted(order) != list(range(classes)):
        raise ValueError(f"{where} must list each of the data's {classes} classes once, in the teacher's output order; "
                         f"got {values!r}.")
    return order


def order_names(order, class_names, classes: int) -> list[str]:
    """The data's names of the classes in `order` (indices when the data has no names)."""
    names = [str(c) for c in class_names] if class_names else [str(i) for i in range(classes)]
    return [names[i] for i in order]


def reorder(logits, order) -> np.ndarray:
    """The teacher's outputs in the data's class order: column `order[j]` takes output `j`."""
    out = np.empty_like(logits)
    out[:, list(order)] = logits
    return out


def describe_fields(fields: dict) -> str:
    return ", ".join(f"{k} = {v:.6g}" if isinstance(v, float) else f"{k} = {v}" for k, v in fields.items())


def _norm(v):
    return list(v) if isinstance(v, tuple) else v


def range_and_order(adapter: dict, forward, sample, class_names, classes: int, channels: int, name: str,
                    fixed: tuple[dict, str] | None = None, check_fit: bool = True) -> tuple[dict, list[str]]:
    """The value range and class order of a teacher: declared, fixed by the teacher itself, or inferred.

    Args:
        adapter: the adapter as declared (`AdapterConfig` fields).
        forward: `fn(range_fields, images) -> logits`.
        sample: `(images, int labels)` of the training data, or None: the
            first `PROBE_IMAGES` are probed, the rest break a tie.
        class_names: the data's class names (may be empty).
        classes: the data's number of classes (the teacher's outputs).
        channels: the channels the teacher takes.
        name: the teacher, for the messages.
        fixed: `(range fields, sentence)` when the teacher normalises its
            own input (a Keras Rescaling layer): no probe.
        check_fit: refuse a teacher no better than chance on the sample.

    Returns:
        `(fields, notes)`: `scale`, `mean`, `std`, `channels` and, when
        declared, `class_order` (data-class indices), and one sentence each.

    Raises:
        ValueError: a teacher whose classes come in another order (with the
            order it implies), or no better than chance under any value range.
    """
    notes, fields = [], {}
    order = resolve_class_order(adapter["class_order"], class_names, classes) if adapter.get("class_order") else None
    if order is not None:
        fields["class_order"] = order
        notes.append(f"class order declared (teacher.adapter.class_order): the teacher's outputs "
                     f"({', '.join(order_names(order, class_names, classes))}) read as the data's classes")
    rng = declared_range(adapter)
    if rng:
        notes.append(f"value range declared: {describe_fields({k: v for k, v in declared(adapter).items() if k in RANGE_KEYS})}")
    elif fixed is not None:
        rng = fixed[0]
        notes.append(fixed[1])
    if sample is None or not len(sample[0]):
        if not rng:
            rng = dict(NEUTRAL)
            notes.append("raw 0-255 pixels assumed (no labelled images to test other ranges on); declare "
                         "teacher.adapter.scale/mean/std to override")
        return {**fields, **rng}, notes
    images, labels = sample[0][:PROBE_IMAGES], np.asarray(sample[1][:PROBE_IMAGES]).astype(int)
    n = len(labels)

    def run(f, x):
        logits = np.asarray(forward(f, x))
        return reorder(logits, order) if order is not None else logits

    if rng:
        pred, tried = run(rng, images).argmax(-1), ""
    else:
        logits = probe_ranges(run, images, channels)
        tied = top_ranges(logits, labels, classes, order is not None)
        tried = ", ".join(f"{k} {100 * np.mean(v.argmax(-1) == labels):.1f}%" for k, v in logits.items())
        how = f"the teacher is most accurate under it on {n} training images ({tried})"
        if len(tied) > 1 and len(sample[0]) > n:  # a tie: the tied candidates again, on every labelled image given
            more, more_labels = sample[0], np.asarray(sample[1]).astype(int)
            again = probe_ranges(run, more, channels, tied)
            tied = top_ranges(again, more_labels, classes, order is not None)
            how += (f"; tied, so tried again on {len(more_labels)} images ("
                    + ", ".join(f"{k} {100 * np.mean(v.argmax(-1) == more_labels):.1f}%" for k, v in again.items())
                    + ")")
        if len(tied) > 1:  # still tied: the least extreme scores, which is how a network sees its own range
            margins = {k: median_margin(logits[k]) for k in tied}
            best = min(tied, key=lambda k: (margins[k], tied.index(k)))
            how += (f"; a tie among {', '.join(tied)}, broken by the rule that the teacher's logits are least "
                    f"extreme under its own range (median top-2 logit margin "
                    + ", ".join(f"{k} {v:.3g}" for k, v in margins.items()) + ")")
        else:
            best = tied[0]
        rng, pred = {**NEUTRAL, **VALUE_RANGES[best]}, logits[best].argmax(-1)
        notes.append(f"value range {best} inferred: {how}; declare teacher.adapter.scale/mean/std to override")
    accuracy, chance = float(np.mean(pred == labels)), 1.0 / classes
    if check_fit and order is None:
        other = another_order(pred, labels, classes)
        if other is not None:
            implied = order_names(other[0], class_names, classes)
            value = "[" + ", ".join(f'"{c}"' for c in implied) + "]" if class_names else str(other[0])
            raise ValueError(f"teacher {name} scores {100 * accuracy:.1f}% on {n} training images ({classes} classes, "
                             f"chance {100 * chance:.1f}%), but its outputs map one to one onto the data's classes in "
                             f"another order: read as ({', '.join(implied)}) it scores {100 * other[1]:.1f}%; if that "
                             f"is its class order, set teacher.adapter.class_order = {value}.")
    if check_fit and accuracy <= chance_bar(n, classes) and not too_few(n, classes):
        how = (f"under any value range ({tried})" if tried else
               "under the declared teacher.adapter" if declared_range(adapter) else f"({notes[-1]})")
        keys = "teacher.adapter.layout, size, scale, mean, std, channels"
        raise ValueError(f"teacher {name} is no better than chance ({100 * chance:.1f}%) on {n} training images "
                         f"{how}; declare {keys} as it was trained, check that it was trained on these classes, or "
                         f"set teacher.check_fit = false.")
    return {**fields, **rng}, notes
