"""Which examples a split or a limit keeps: class-balanced shares, and at least one training image per class."""

from __future__ import annotations

import numpy as np


def balanced_indices(labels, limit: int, seed: int = 0) -> np.ndarray:
    """Up to `limit` indices of `labels`, as even a share of every class as its images allow, in source order.

    `data.limit` and `--smoke` take this share: the first `limit` of a
    class-sorted source would keep its first classes only.
    """
    labels = np.asarray(labels)
    if not limit or limit >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    queues = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    take, depth = [], 0
    while len(take) < limit:
        for q in queues:
            if depth < len(q) and len(take) < limit:
                take.append(q[depth])
        depth += 1
    return np.sort(np.array(take, int))


def class_counts(labels, num_classes: int) -> list:
    """Images per class, as a list of `num_classes` ints."""
    return np.bincount(np.asarray(labels, int), minlength=num_classes)[:num_classes].tolist()


def keep_one_per_class(train, held, labels) -> tuple[np.ndarray, np.ndarray]:
    """`(train, held)` indices with one held-out image moved back to training for each class the holdout emptied.

    A random validation or test holdout of a small set can take a class's every image; the class then keeps
    one to train on (its other images stay held out). Splits where every class trains are returned unchanged.
    """
    train, held, labels = np.asarray(train), np.asarray(held), np.asarray(labels)
    present = set(labels[train].tolist())
    back = [i for i, c in enumerate(labels[held].tolist()) if c not in present and not present.add(c)]
    if not back:
        return train, held
    return np.concatenate([train, held[back]]), np.delete(held, back)
