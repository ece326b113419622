"""A tiny MMAR config on synthetic data, shared by the training tests."""

import json
import os

from ai4med.config.mmar import Mmar


def tiny_config(epochs: int = 3, **overrides) -> dict:
    cfg = {
        "epochs": epochs,
        "num_training_epoch_per_valid": 1,
        "learning_rate": 0.01,
        "determinism": {"random_seed": 3},
        "train": {
            "loss": {"name": "CrossEntropyDice"},
            "optimizer": {"name": "Adam", "args": {"learning_rate": "{learning_rate}"}},
            "model": {"name": "Unet", "args": {"num_classes": 2, "channels": [4, 8], "strides": [2],
                                                "num_res_units": 0, "final_activation": "softmax"}},
            "pre_transforms": [
                {"name": "LoadNifti#load", "args": {"fields": ["image", "label"]}},
                {"name": "ConvertToChannelsFirst#ch", "args": {"fields": ["image", "label"]}},
                {"name": "CropByPosNegRatio", "args": {"size": [16, 16, 16], "fields": ["image", "label"],
                                                       "label_field": "label", "batch_size": 2}},
            ],
            "image_pipeline": {"name": "SegmentationImagePipeline", "args": {
                "data_list_file_path": "{DATASET_JSON}", "data_list_key": "training",
                "output_crop_size": [16, 16, 16], "output_batch_size": 2, "num_workers": 0}},
            "aux_ops": [{"name": "NegLoss", "args": {"tag": "neg_loss"}}],
        },
        "validate": {
            "metrics": [{"name": "ComputeAverageDice", "args": {"name": "mean_dice", "field": "model",
                                                                 "label_field": "label", "is_key_metric": True}}],
            "pre_transforms": [{"ref": "load"}, {"ref": "ch"}],
            "image_pipeline": {"name": "SegmentationImagePipeline", "args": {
                "data_list_file_path": "{DATASET_JSON}", "data_list_key": "validation",
                "output_crop_size": [-1, -1, -1], "output_batch_size": 1, "num_workers": 0, "shuffle": False}},
            "inferer": {"name": "TFScanWindowInferer", "args": {"roi_size": [16, 16, 16], "batch_size": 2}},
        },
    }
    cfg.update(overrides)
    return cfg


def write_mmar(root, cfg: dict, data_dir) -> str:
    Mmar.create(str(root))
    with open(os.path.join(root, "config", "config_train.json"), "w") as fh:
        json.dump(cfg, fh)
    with open(os.path.join(root, "config", "environment.json"), "w") as fh:
        json.dump({"DATASET_JSON": os.path.join(str(data_dir), "datalist.json"), "MMAR_CKPT_DIR": "models",
                   "MMAR_EVAL_OUTPUT_PATH": "eval"}, fh)
    return str(root)
