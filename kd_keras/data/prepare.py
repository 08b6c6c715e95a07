"""Check and index a dataset folder before training: `python -m kd_keras.data.prepare SOURCE PATH`.

SOURCE is `tiny_imagenet` or `mhist`. It checks the layout (one line naming
what is missing), decodes every image, and prints the classes, the split
sizes, how many images were grayscale, and which files are unreadable (a
run refuses those unless `--skip-bad-images`). With `--out FILE.json` it also writes
the index: classes and `(file, label)` pairs per split.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from kd_keras.cli.args import command_parser, parse
from kd_keras.version import __version__
from kd_keras.cli.errors import check_new_output, report_user_errors
from kd_keras.data import folders

INDEXERS = {"tiny_imagenet": folders.index_tiny_imagenet, "mhist": folders.index_mhist}


def prepare(source: str, path: str, out: str | None = None, overwrite: bool = False, log=print) -> dict:
    """Indexes and decodes a folder dataset; returns a summary."""
    if source not in INDEXERS:
        raise ValueError(f"unknown source {source!r}; prepare handles {', '.join(INDEXERS)}.")
    if out:
        check_new_output(out, overwrite)
    index = INDEXERS[source](path)
    from PIL import Image

    summary = {"source": source, "path": path, "classes": len(index["classes"])}
    for split in ("train", "test"):
        grey, bad = 0, []
        for f, _ in index[split]:
            try:
                with Image.open(f) as im:
                    im.load()
                    grey += im.mode in ("L", "LA", "1")
            except (OSError, ValueError, SyntaxError):
                bad.append(f)
        summary[split] = {"images": len(index[split]), "grayscale": grey, "unreadable": bad}
        log(f"{split}: {len(index[split])} images, {grey} grayscale, {len(bad)} unreadable"
            + (f" ({', '.join(os.path.basename(b) for b in bad[:5])})" if bad else ""))
    log(f"{summary['classes']} classes: {', '.join(index['classes'][:10])}{' ...' if summary['classes'] > 10 else ''}")
    if out:
        tmp = out + ".partial"
        with open(tmp, "w") as f:
            json.dump(index, f)
        os.replace(tmp, out)
        log(f"index written to {out}")
    return summary


def parser() -> argparse.ArgumentParser:
    prog = "python -m kd_keras.data.prepare"
    p = command_parser(prog, __doc__.splitlines()[0],
                       [f"{prog} tiny_imagenet ~/data/tiny-imagenet-200",
                        f"{prog} mhist ~/data/mhist --out mhist_index.json"], __version__)
    p.add_argument("source", choices=tuple(INDEXERS), help="the folder's layout")
    p.add_argument("path", help="the dataset folder")
    p.add_argument("--out", help="write the index to this JSON file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return p


def main(argv=None) -> int:
    args, code = parse(parser(), argv)
    if args is None:
        return code
    return report_user_errors(prepare, args.source, args.path, args.out, args.overwrite)


if __name__ == "__main__":
    sys.exit(main())
