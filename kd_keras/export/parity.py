"""Parity: does an exported model compute what its Keras original computes?

Both run on the same real test inputs from the task's pipeline, and the
comparison fits the task:
- classification: top-1 agreement, and the largest absolute logit difference;
- super-resolution: PSNR between the two output images (0-255 scale);
- edge detection: mean absolute difference of the probability maps.

An export below its threshold is refused. The thresholds depend on how far
the export is from fp32 (quantisation changes outputs by design):

| task | fp32 | fp16 | dynamic | int8 |
|---|---|---|---|---|
| classification: top-1 agreement >= | 99.9% | 99.5% | 98% | 98% |
| classification: max abs logit difference <= (x max abs logit) | 1e-3 | - | - | - |
| super-resolution: PSNR between outputs >= | 60 dB | 45 dB | 35 dB | 30 dB |
| edge detection: mean abs map difference <= | 1e-4 | 2e-3 | 0.02 | 0.03 |
"""

from __future__ import annotations

import math

import numpy as np

THRESHOLDS = {
    "classification": {"fp32": {"top1_agreement": 0.999, "max_abs_diff_rel": 1e-3}, "fp16": {"top1_agreement": 0.995},
                       "dynamic": {"top1_agreement": 0.98}, "int8": {"top1_agreement": 0.98}},
    "super_resolution": {"fp32": {"psnr_db": 60.0}, "fp16": {"psnr_db": 45.0}, "dynamic": {"psnr_db": 35.0},
                         "int8": {"psnr_db": 30.0}},
    "edge_detection": {"fp32": {"mean_abs_diff": 1e-4}, "fp16": {"mean_abs_diff": 2e-3},
                       "dynamic": {"mean_abs_diff": 0.02}, "int8": {"mean_abs_diff": 0.03}},
}
HIGHER_IS_BETTER = {"top1_agreement", "psnr_db"}


def precision(quantize: str) -> str:
    """The threshold column of a quantisation mode."""
    return "fp32" if quantize == "none" else quantize


def compare(task: str, reference, candidate, samples: list) -> dict:
    """Parity measures of `candidate` against `reference` on `samples`.

    Args:
        task: "classification", "super_resolution" or "edge_detection".
        reference, candidate: callables from a float32 NHWC batch to outputs.
        samples: float32 HxWxC inputs (one size for classification).
    """
    if task == "classification":
        x = np.stack(samples)
        ref, out = np.asarray(reference(x)), np.asarray(candidate(x))
        diff = float(np.max(np.abs(ref - out)))
        return {"top1_agreement": float(np.mean(ref.argmax(-1) == out.argmax(-1))), "max_abs_diff": diff,
                "max_abs_diff_rel": diff / max(1.0, float(np.max(np.abs(ref))))}
    pairs = [(np.asarray(reference(s[None]))[0], np.asarray(candidate(s[None]))[0]) for s in samples]
    if task == "super_resolution":
        mse = np.mean(np.concatenate([((r - o) ** 2).ravel() for r, o in pairs]))
        return {"psnr_db": math.inf if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))}
    diffs = np.concatenate([np.abs(_sigmoid(r) - _sigmoid(o)).ravel() for r, o in pairs])
    return {"mean_abs_diff": float(diffs.mean()), "max_abs_diff": float(diffs.max())}


def check(task: str, quantize: str, measures: dict) -> list[str]:
    """The thresholds `measures` miss, as readable phrases (empty: parity holds)."""
    failures = []
    for key, limit in THRESHOLDS[task][precision(quantize)].items():
        value = measures[key]
        ok = value >= limit if key in HIGHER_IS_BETTER else value <= limit
        if not ok:
            failures.append(f"{key} {value:.6g} {'<' if key in HIGHER_IS_BETTER else '>'} {limit:g}")
    return failures


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))
