"""What a teacher source hands a task's training pipeline in place of a live teacher: one form for every task."""

from __future__ import annotations

import dataclasses

KINDS = ("outputs", "views", "maps")


@dataclasses.dataclass(frozen=True)
class TeacherTargets:
    """The teacher's stored outputs, in the form a task's `pipelines(..., targets=...)` takes.

    Attributes:
        kind: "outputs": one output per training example, aligned with the task's `train_examples`
            (`TeacherOutputCache.outputs`); "views": stored augmented views of those examples with the teacher's
            outputs for each (`TeacherViewsCache.views`); "maps": the teacher's map of each whole training image,
            aligned with the task's `map_images` (`TeacherMapsCache.maps`).
        data: that payload.
        layout: for "maps", `[(output name, channels)]` of the maps' channels (`TeacherMapsCache.layout`; None:
            all of them the final output).
    """

    kind: str
    data: object
    layout: tuple | list | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"teacher targets kind must be one of {', '.join(KINDS)}, got {self.kind!r}.")
