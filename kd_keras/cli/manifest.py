"""What a run owns in its `--out` folder: a manifest of the files it writes.

Before its first file, a run (a recipe, a benchmark) records in
`<out>/.kd_keras_run.json` the names it will write: models, logs, results,
exports, its teacher cache and resume records; at its end it adds any
other file that appeared in the folder while it ran. The rule, checked
before anything runs:

- without `--overwrite`, a folder that holds any file the manifest does
  not list is refused, naming a few of them (a user's `kd.keras`, logs,
  teacher weights, or a run of a kd_keras without manifests);
- with `--overwrite`, exactly the files of the previous manifest are
  removed, and only once the new run has passed its checks; a file it does
  not list is never removed, and a file the new run reads (teacher weights,
  a model file, data) is refused instead of replaced.

So a user's own files are never changed, and the logs and figure of one run
never mix with another's. A file a user drops into the folder while a run
writes it is counted as the run's.
"""

from __future__ import annotations

import json
import os

MANIFEST = ".kd_keras_run.json"
INTERNAL = (".lock", MANIFEST, MANIFEST + ".partial")  # the lock and the manifest itself


def _plain(rel: str) -> str:
    """A temporary file's final name: `teacher.partial.keras` and `results.json.partial` belong with their files."""
    return rel.replace(".partial", "")


class Manifest:
    """The files and folders a run owns in `out_dir` (relative, `/`-separated; a folder ends in `/`)."""

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.path = os.path.join(out_dir, MANIFEST)
        self.entries: set[str] = set()
        self.readable = True
        if os.path.isfile(self.path):
            try:
                with open(self.path) as f:
                    self.entries = set(json.load(f)["owns"])
            except (OSError, ValueError, KeyError, TypeError):
                self.readable = False  # a damaged manifest owns nothing: every file counts as foreign

    def owns(self, rel: str) -> bool:
        rel = _plain(rel.replace(os.sep, "/"))
        return rel in self.entries or any(e.endswith("/") and rel.startswith(e) for e in self.entries)

    def files(self) -> list[str]:
        """Every file under the folder but the lock and the manifest, relative and sorted."""
        if not os.path.isdir(self.out_dir):
            return []
        out = []
        for root, dirs, names in os.walk(self.out_dir):
            dirs.sort()
            for n in sorted(names):
                rel = os.path.relpath(os.path.join(root, n), self.out_dir).replace(os.sep, "/")
                if rel not in INTERNAL:
                    out.append(rel)
        return out

    def foreign(self) -> list[str]:
        """The files here that no kd_keras run wrote (by this manifest)."""
        return [f for f in self.files() if not self.owns(f)]

    def owned(self) -> list[str]:
        return [f for f in self.files() if self.owns(f)]

    def claim(self, names) -> None:
        """Adds `names` (files, or folders ending in `/`) and writes the manifest atomically."""
        self.entries |= {n.replace(os.sep, "/") for n in names}
        os.makedirs(self.out_dir, exist_ok=True)
        tmp = self.path + ".partial"
        with open(tmp, "w") as f:
            json.dump({"written_by": "kd_keras", "owns": sorted(self.entries)}, f, indent=1)
            f.write("\n")
        os.replace(tmp, self.path)

    def remove_owned(self) -> list[str]:
        """Removes exactly the files this manifest lists, then the folders they leave empty; forgets them."""
        removed = self.owned()
        for rel in removed:
            os.remove(os.path.join(self.out_dir, rel))
        for root, _, _ in sorted(os.walk(self.out_dir), key=lambda w: -len(w[0])):  # deepest first
            rel = os.path.relpath(root, self.out_dir).replace(os.sep, "/") + "/"
            made = any(e.startswith(rel) or e.endswith("/") and rel.startswith(e) for e in self.entries)
            if root != self.out_dir and made:  # a folder it claimed, inside one, or above a claimed name
                try:
                    os.rmdir(root)
                except OSError:  # not empty: holds something else
                    pass
        self.entries = set()
        return removed


def shown(files: list[str], n: int = 3) -> str:
    return ", ".join(files[:n]) + (f" and {len(files) - n} more" if len(files) > n else "")


def check_ownership(out_dir: str, inputs: dict | None = None) -> Manifest:
    """Refuses an `out_dir` with files no kd_keras run wrote, and inputs that `--overwrite` would remove.

    Args:
        out_dir: the run's output folder.
        inputs: `{what: path}` the run reads (e.g. `{"teacher.weights": "runs/x/teacher.keras"}`).

    Raises:
        ValueError: one line naming a few of the files and the fix.
    """
    manifest = Manifest(out_dir)
    foreign = manifest.foreign()
    if foreign:
        why = "a damaged manifest (.kd_keras_run.json)" if not manifest.readable else "no kd_keras run's manifest"
        raise ValueError(f"--out {out_dir!r} holds {len(foreign)} file(s) that kd_keras did not write there "
                         f"({shown(foreign)}; {why} lists them); a run writes only to a new or empty folder or "
                         f"one of its own earlier runs, and --overwrite replaces only such files: choose another "
                         f"--out.")
    root = os.path.realpath(out_dir)
    for what, path in (inputs or {}).items():
        if not path:
            continue
        real = os.path.realpath(path)
        if os.path.commonpath([root, real]) == root and real != root:
            rel = os.path.relpath(real, root).replace(os.sep, "/")
            raise ValueError(f"{what} {path!r} lies in --out {out_dir!r} ({rel}), where this run writes and "
                             f"--overwrite removes; copy it out of the folder or choose another --out.")
    return manifest
