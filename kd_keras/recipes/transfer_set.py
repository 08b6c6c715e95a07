"""A recipe's transfer set (`data.unlabeled`): read before the teacher runs, then mixed into the training
splits of every KD entry that uses it (`kd_keras.data.unlabeled` holds the reading and the mixing)."""

from __future__ import annotations

from kd_keras.data.subsets import left_out
from kd_keras.data.unlabeled import REST, entries, load_unlabeled, with_unlabeled


def transfer_set(cfg, plans, splits, log=print):
    """The transfer set of `data.unlabeled`, or None when it is empty or no `[[distill]]` entry uses it."""
    d = cfg.data
    if not entries(d.unlabeled) or not any(e.unlabeled for e, _ in plans):
        return None
    rest, n_rest = (left_out(splits, d.labels_per_class, cfg.train.seed) if REST in entries(d.unlabeled)
                    else (None, 0))
    found = load_unlabeled(d, splits, rest, n_rest, log)
    log(f"data: a transfer set of {found.count:,} unlabelled images ({found.description}), labelled by the "
        f"teacher alone")
    return found


def mixed_splits(cfg, plans, splits, found, log=print) -> dict:
    """`{KD entry: its training splits}`: the students' labelled `splits` and the transfer set, for every entry
    with `unlabeled = true`, mixed as its `labeled_share` says (one split per share)."""
    out, mixed = {}, {}
    for d, _ in plans:
        if not d.unlabeled:
            continue
        if d.labeled_share not in mixed:
            mixed[d.labeled_share] = with_unlabeled(splits, found, d.labeled_share, cfg.train.seed)
            users = [e.name for e, _ in plans if e.unlabeled and e.labeled_share == d.labeled_share]
            log(f"data for {', '.join(users)}: {mixed[d.labeled_share].description}; the baseline trains on the "
                f"{splits.num_train:,} labelled images alone, every student of a pair for the same steps")
        out[d.name] = mixed[d.labeled_share]
    return out


def transfer_images(splits, labelled) -> int:
    """How many unlabelled transfer images a KD student's training splits add to the labelled ones (0: none)."""
    if splits is None:
        return 0
    return getattr(splits, "unlabeled", 0) or splits.num_train - labelled.num_train
