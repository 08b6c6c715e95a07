"""benchmarks/edge_loss_scales.py runs on a BSDS-layout folder and prints each term's pull against the label loss."""

import importlib.util
import os
import subprocess
import sys

import keras
import pytest
from test_dense_data import make_bsds

from kd_keras.config import REPO_ROOT
from kd_keras.models import create_model


def test_edge_loss_scales_prints_each_terms_gradient_norm_and_its_equal_pull_weight(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("edge_loss_scales", REPO_ROOT / "benchmarks" / "edge_loss_scales.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    data = make_bsds(tmp_path / "bsds", {"train": [(40, 48), (48, 40), (44, 44)], "val": [(40, 40)],
                                         "test": [(41, 47)]})
    config = tmp_path / "edges.toml"
    config.write_text('name = "t"\ntask = "edge_detection"\n[data]\nsource = "bsds"\npath_env = "KD_BSDS500"\n'
                      'patch_size = 32\nbatch_size = 2\n')
    paths = []
    for name, seed in (("teacher", 1), ("student", 2)):
        keras.utils.set_random_seed(seed)
        model = create_model("edge_unet", input_shape=(None, None, 3), widths=[4, 8])
        model.save(tmp_path / f"{name}.keras")
        paths.append(str(tmp_path / f"{name}.keras"))
    bench.main(["--config", str(config), "--data", str(data), "--teacher", paths[0], "--student", paths[1],
                "--batches", "2"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "gradient norm on the student's logits, mean of 2 batches of 2 crops"
    rows = {line[:24].strip(): [float(v) for v in line[24:].split()] for line in lines[2:]}
    assert list(rows) == ["balanced_bce (labels)", "edge_kd (thick map)", "edge_kd thin", "cwd T=1", "cwd T=4"]
    label_norm = rows["balanced_bce (labels)"][0]
    assert label_norm > 0 and rows["balanced_bce (labels)"][1] == 1
    for norm, weight in rows.values():  # each weight makes its term pull as hard as the label loss
        assert norm > 0 and abs(weight * norm - label_norm) <= 0.02 * label_norm  # both printed to 3 digits


@pytest.mark.parametrize("script,args,expected", [
    ("edge_loss_scales", ["--config", "recipes/bsds500.toml", "--data", "{tmp}/none", "--teacher", "{tmp}/t.keras",
                          "--student", "{tmp}/s.keras"], "--teacher '{tmp}/t.keras' is not an existing file"),
    ("teacher_tta", ["--data", "{tmp}/none"], "--data '{tmp}/none' is not an existing folder"),
    ("teacher_maps", ["--data", "{tmp}/none"], "--data '{tmp}/none' is not an existing folder"),
])
def test_edge_benchmarks_give_one_line_and_exit_2_on_a_missing_path(tmp_path, script, args, expected):
    args = [a.format(tmp=tmp_path) for a in args]
    proc = subprocess.run([sys.executable, f"benchmarks/{script}.py", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:") or "Traceback" in line]
    assert proc.returncode == 2 and lines == [f"error: {expected.format(tmp=tmp_path)}; give the path of one."], \
        proc.stderr[-2000:]
    assert proc.stdout == ""
