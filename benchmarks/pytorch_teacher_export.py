"""Step 1 of the PyTorch-teacher trial (issue 45): a timm ResNet-18 trained in PyTorch, exported to ONNX as users do.

Runs in an environment with PyTorch, timm, onnx and onnxscript (not kd_keras' own: the suite never needs PyTorch):

    python -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch timm onnx onnxscript onnxruntime pillow
    /tmp/torchenv/bin/python benchmarks/pytorch_teacher_export.py --data ../shared/data/cifar10_small.npz \\
        --out runs/pytorch_teacher

From the CIFAR-10 subset it writes two image folders of 32 px photographs, the way a user's data arrive:

- `photos/`: 4 classes (airplane, automobile, ship, truck), the subset's test images (200 per class);
- `photos3/`: 3 classes (frog, ship, truck), which kd_keras sorts as (frog, ship, truck);

and trains, on the subset's *training* images of the same classes (none of them in the folders), a timm
ResNet-18 per folder with torchvision's convention: NCHW tensors, pixels / 255, ImageNet mean/std
normalisation outside the model. The 3-class teacher's outputs are ordered (ship, truck, frog), the order its
author listed them in. Each teacher is exported with

- `torch.onnx.export(..., dynamo=False, dynamic_axes={"input": {0: "batch"}})` (the TorchScript exporter, as
  docs/own_model.md shows),
- `torch.onnx.export(..., dynamo=True, dynamic_shapes=...)` (the dynamo exporter, PyTorch's default since 2.9),
- the TorchScript exporter at a fixed batch of 1 (no dynamic axes);

and its accuracy on its folder in PyTorch is written to `<out>/torch.json`, which step 2
(`benchmarks/pytorch_teacher.py`, in kd_keras' environment) compares with what kd_keras measures.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

FOUR = ("airplane", "automobile", "ship", "truck")
THREE = ("ship", "truck", "frog")  # the teacher's output order; kd_keras sorts the folder as (frog, ship, truck)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="cifar10_small.npz")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def write_folder(folder, x, y, names, classes):
    from PIL import Image

    for c in classes:
        os.makedirs(os.path.join(folder, c), exist_ok=True)
    for i, (img, label) in enumerate(zip(x, y)):
        name = names[label]
        if name in classes:
            Image.fromarray(img).save(os.path.join(folder, name, f"{i:05d}.png"))


def to_tensor(x):
    import torch

    t = torch.from_numpy(x).float().permute(0, 3, 1, 2) / 255.0  # NCHW in [0, 1], as torchvision's ToTensor
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    return (t - mean) / std


def train(x, y, classes, epochs, seed, log):
    import timm
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(2)
    model = timm.create_model("resnet18", pretrained=False, num_classes=classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4, nesterov=True)
    steps = epochs * ((len(x) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 0.05, total_steps=steps)
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(x))
        t0, total = time.time(), 0.0
        for i in range(0, len(x), 64):
            idx = order[i:i + 64]
            xb = x[idx].copy()
            flip = rng.random(len(xb)) < 0.5
            xb[flip] = xb[flip, :, ::-1]
            xb = to_tensor(xb)
            loss = torch.nn.functional.cross_entropy(model(xb), torch.from_numpy(y[idx]).long())
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        log(f"  epoch {epoch + 1}/{epochs}: loss {total / len(x):.3f} ({time.time() - t0:.0f} s)")
    return model.eval()


def accuracy(model, x, y):
    import torch

    with torch.no_grad():
        logits = torch.cat([model(to_tensor(x[i:i + 200])) for i in range(0, len(x), 200)])
    return float((logits.argmax(-1).numpy() == y).mean())


def export(model, out, stem, log):
    import torch

    example = torch.zeros(2, 3, 32, 32)
    files = {}
    path = os.path.join(out, f"{stem}_torchscript.onnx")
    torch.onnx.export(model, (example,), path, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    files["torchscript, dynamic batch"] = path
    path = os.path.join(out, f"{stem}_torchscript_batch1.onnx")
    torch.onnx.export(model, (torch.zeros(1, 3, 32, 32),), path, input_names=["input"], output_names=["logits"],
                      dynamo=False)
    files["torchscript, batch 1"] = path
    path = os.path.join(out, f"{stem}_dynamo.onnx")
    try:
        batch = torch.export.Dim("batch", min=1, max=1024)
        torch.onnx.export(model, (example,), path, input_names=["input"], output_names=["logits"],
                          dynamic_shapes=({0: batch},), dynamo=True)
        files["dynamo, dynamic batch"] = path
    except Exception as e:  # the dynamo exporter's failures are reported, not fatal
        log(f"  dynamo exporter failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    return files


def main(argv=None):
    import torch

    args = parse(argv)
    os.makedirs(args.out, exist_ok=True)
    d = np.load(args.data)
    names = [str(n) for n in d["class_names"]]
    record = {"torch": torch.__version__, "teachers": {}}
    for stem, classes, folder in (("resnet18_4", FOUR, "photos"), ("resnet18_3", THREE, "photos3")):
        target = os.path.join(args.out, folder)
        if not os.path.isdir(target):
            write_folder(target, d["x_test"], d["y_test"], names, classes)
        keep = np.isin(np.array(names)[d["y_train"]], classes)
        x, y = d["x_train"][keep], np.array([classes.index(names[v]) for v in d["y_train"][keep]])
        print(f"{stem}: training timm resnet18 on {len(x)} images of {classes} (outputs in this order)", flush=True)
        t0 = time.time()
        model = train(x, y, len(classes), args.epochs, args.seed, lambda m: print(m, flush=True))
        keep = np.isin(np.array(names)[d["y_test"]], classes)
        xt, yt = d["x_test"][keep], np.array([classes.index(names[v]) for v in d["y_test"][keep]])
        acc = accuracy(model, xt, yt)
        print(f"{stem}: {acc:.4f} on the {len(xt)} images of {folder}/ in PyTorch ({time.time() - t0:.0f} s)",
              flush=True)
        files = export(model, args.out, stem, print)
        record["teachers"][stem] = {"classes": list(classes), "folder": folder, "torch_accuracy": acc,
                                    "images": int(len(xt)), "files": files, "epochs": args.epochs}
    with open(os.path.join(args.out, "torch.json"), "w") as f:
        json.dump(record, f, indent=1)
    print(f"wrote {os.path.join(args.out, 'torch.json')}")


if __name__ == "__main__":
    main()
