"""The main job end to end (synthetic, 2 epochs): MMAR layout, checkpoints, reports, predictions, pictures."""

import json
import os

import nibabel as nib
import numpy as np

from ai4med.cli import main


def test_demo_synthetic_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--output", str(out), "--task", "synthetic", "--cases", "3", "--epochs", "2"]) == 0
    for sub in ("config", "commands", "models", "eval", "data", "custom"):
        assert (out / sub).is_dir(), sub
    assert (out / "commands" / "train.sh").read_text().count("ai4med train") == 1
    for name in ("model.pt", "final_model.pt", "last_checkpoint.pt", "training_history.json"):
        assert (out / "models" / name).exists(), name
    results = json.loads((out / "results.json").read_text())
    assert results["epochs"] == 2 and 0.0 <= results["best_val_mean_dice"] <= 1.0
    assert results["validation"]["mean_dice"] == results["best_val_mean_dice"]
    summary = (out / "eval" / "mean_dice_summary_results.txt").read_text().split()
    assert summary[0] == "mean_dice" and float(summary[1]) == round(results["validation"]["mean_dice"], 6)
    # one prediction per validation case, on the input's grid, with labels from the model's classes
    datalist = json.loads((out / "data" / "datalist.json").read_text())
    assert len(results["predictions"]) == len(datalist["validation"]) == 1
    pred = nib.load(results["predictions"][0])
    image = nib.load(os.path.join(out, "data", datalist["validation"][0]["image"]))
    np.testing.assert_allclose(pred.affine, image.affine, atol=1e-5)
    assert pred.shape == image.shape and set(np.unique(np.asarray(pred.dataobj))) <= {0, 1}
    for png in results["pictures"]:
        with open(png, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "best_val_mean_dice" in capsys.readouterr().out
