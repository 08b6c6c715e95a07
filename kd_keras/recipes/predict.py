"""`--predict IMAGE --out OUT.png`: run a trained dense model on one image of any size."""

from __future__ import annotations

import os

import numpy as np

from kd_keras.cli.errors import check_new_output
from kd_keras.data.images import read_image
from kd_keras.models.runtimes import load_trained


def default_model_path(cfg) -> str:
    """The first KD student of the recipe's default output dir."""
    name = cfg.distill[0].name if cfg.distill else "baseline"
    return os.path.join("runs", cfg.name, f"{name}.keras")


def write_png(path: str, image: np.ndarray, overwrite: bool) -> None:
    """Writes a PNG atomically; refuses to replace a file unless `overwrite`."""
    from PIL import Image

    if not path.lower().endswith(".png"):
        raise ValueError(f"--out must be a .png file for --predict, got {path!r}.")
    check_new_output(path, overwrite)
    tmp = path[:-4] + ".partial.png"
    Image.fromarray(image).save(tmp, format="PNG")
    os.replace(tmp, path)


def predict(task, cfg, image_path: str, out: str | None, model_path: str | None, overwrite: bool = False):
    """Reads `image_path`, runs the model, writes the task's output image to `out`.

    Returns:
        The output image as a uint8 array.
    """
    if not out:
        raise ValueError("--predict needs --out OUT.png, the file to write.")
    image = read_image(image_path)
    path = model_path or default_model_path(cfg)
    model = load_trained(path)
    kind = task.output_kind(model)
    wanted = "edge map" if task.name == "edge_detection" else "image x"
    if not kind.startswith(wanted):
        side = 32 * int(kind[7:]) if kind.startswith("image x") else 0
        what = {"edge map": "a 32x32 edge map (an edge-detection model)",
                "image x": f"a {side}x{side} image (a super-resolution model)"}
        owner = {"edge map": "edge_detection", "image x": "super_resolution"}
        known = next((k for k in what if kind.startswith(k)), None)
        made = what[known] if known else f"an {kind} (not a dense-task model)"
        rerun = f"run python -m kd_keras.recipes.{owner[known]} --predict, or " if known else ""
        raise ValueError(f"model {path!r} turns a 32x32 image into {made}, not "
                         f"{'an edge map' if wanted == 'edge map' else 'a larger image'}; {rerun}pass a "
                         f"{task.name.replace('_', '-')} model with --model.")
    result = task.predict(model, image)
    write_png(out, result, overwrite)
    print(f"wrote {out} ({result.shape[1]}x{result.shape[0]}) from {image_path} "
          f"({image.shape[1]}x{image.shape[0]}) with {model.name}")
    return result
