"""Files shipped inside the package, each checked against its fingerprint before use.

- `fashion_mnist_small.npz`: a Fashion-MNIST subset (10,000 train / 2,000
  test images, MIT licence: `FASHION_MNIST_LICENSE.txt`), the data of the
  default recipe (`data.source = "fashion_mnist_small"`).
- `fashion_mnist_small_resnet20.keras`: the default recipe's teacher,
  `resnet20` with weights `"fashion_mnist_small"`; its model card,
  `fashion_mnist_small_resnet20.md`, gives its score and the command that
  trained it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

FOLDER = Path(__file__).resolve().parent

# name -> sha256 of the file as shipped
FINGERPRINTS = {
    "fashion_mnist_small.npz": "4de4b88c4bc943e3336d177039491ed39993e0680c6f3d45d0f5b53123e4170f",
    "fashion_mnist_small_resnet20.keras": "dd240c90699785710de4ad3cd4bb7931f6cb9c88cbe5e1c5537755ef8f371514",
}

REINSTALL = "pip install --force-reinstall --no-deps kd_keras (or git checkout the file in a clone)"


def asset_path(name: str, what: str, fix: str = "") -> Path:
    """The path of shipped file `name`, after checking that it is there and unchanged.

    Args:
        name: a key of `FINGERPRINTS`.
        what: what the file is, for the error message.
        fix: another way out, appended to the reinstall hint.

    Raises:
        ValueError: the file is missing or its sha256 differs from the one it shipped with.
    """
    path = FOLDER / name
    other = f", or {fix}" if fix else ""
    if not path.is_file():
        raise ValueError(f"{what} {path} is missing from the installed package; reinstall it: {REINSTALL}{other}.")
    digest = sha256(path)
    if digest != FINGERPRINTS[name]:
        raise ValueError(f"{what} {path} is corrupt or changed (sha256 {digest[:12]}..., shipped as "
                         f"{FINGERPRINTS[name][:12]}...); reinstall it: {REINSTALL}{other}.")
    return path


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
