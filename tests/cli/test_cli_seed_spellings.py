"""Seed 004's command spellings parse as the seed writes them (argparse only, no training)."""

import argparse
import logging

import pytest

from ai4med.apps._cli_args import config_candidates
from ai4med.apps.train import seed_checkpoint, split_words
from ai4med.cli import build_parser, log_level
from ai4med.errors import UserError


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_tlt_train_long_flags_of_the_fine_tuning_example():
    """Seed 004 §6.4.2.3.2, which gave `unrecognized arguments` before."""
    a = parse("tlt-train", "segmentation", "--config", "c.json", "--file_root", "/d", "--data_list", "dl.json",
              "--checkpoint", "/p/model.ckpt", "--model_dir", "/out")
    assert (a.config, a.file_root, a.datalist, a.checkpoint, a.output) == ("c.json", "/d", "dl.json",
                                                                            "/p/model.ckpt", "/out")
    assert split_words(a) == ("segmentation", [])


def test_train_and_validate_take_key_value_words_like_the_commands_scripts():
    a = parse("train", "-m", "mmar", "-c", "config/config_train.json", "epochs=5", "learning_rate=0.1")
    assert split_words(a) == (None, ["epochs=5", "learning_rate=0.1"])
    b = parse("validate", "-m", "mmar", "epochs=1")
    assert split_words(b) == (None, ["epochs=1"])
    with pytest.raises(UserError, match="unexpected argument 'segmentaton'"):
        split_words(parse("train", "segmentaton"))


def test_tf_model_names_mean_the_pytorch_files(tmp_path):
    (tmp_path / "model.pt").write_bytes(b"x")
    assert seed_checkpoint(str(tmp_path / "model.ckpt")) == str(tmp_path / "model.pt")
    assert seed_checkpoint(str(tmp_path / "other.pt")) == str(tmp_path / "other.pt")  # not a TF name: kept
    a = parse("tlt-infer", "--model_save_path", str(tmp_path / "final_model.trt.pb"))
    assert (a.model_file_path, a.model_name) == (str(tmp_path), "final_model")


def test_export_looks_for_the_config_beside_the_model(tmp_path):
    (tmp_path / "out").mkdir()
    a = parse("tlt-export", "--model_file_path", str(tmp_path / "out"), "--model_name", "model")
    assert config_candidates(a)[:2] == [str(tmp_path / "out" / "config_train.json"),
                                        str(tmp_path / "config" / "config_train.json")]


def test_only_rank_zero_logs_info(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    assert log_level(verbose=True) == logging.WARNING
    monkeypatch.setenv("RANK", "0")
    assert log_level() == logging.INFO and log_level(True) == logging.DEBUG


def test_mpirun_rank_variables_become_torch_distributed_ones():
    from ai4med.cli import mpi_to_torch_env

    env = {"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_LOCAL_RANK": "1"}
    assert mpi_to_torch_env(env)
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"], env["MASTER_ADDR"]) == ("1", "2", "1", "127.0.0.1")
    torchrun = {"RANK": "0", "WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"}
    assert not mpi_to_torch_env(torchrun) and torchrun["RANK"] == "0"  # torchrun's variables win
    assert not mpi_to_torch_env({})


def test_repeated_set_flags_all_count_in_every_command():
    """`--set a=1 --set b=2` keeps both (argparse's default action kept only the last `--set`, so
    `torchrun ... train --set multi_gpu=true --set epochs=160` silently trained on one process)."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands = {name: p for name, p in sub.choices.items() if any("--set" in a.option_strings for a in p._actions)}
    assert {"train", "validate", "infer", "evaluate", "export", "deploy"} <= set(commands)
    for name, p in commands.items():
        dest = next(a.dest for a in p._actions if "--set" in a.option_strings)
        a = p.parse_args(["--set", "multi_gpu=true", "--set", "epochs=160", "learning_rate=0.1"])
        assert getattr(a, dest) == ["multi_gpu=true", "epochs=160", "learning_rate=0.1"], name
        assert getattr(p.parse_args([]), dest) == [], name  # the default list is not shared between parses



def test_a_repeated_model_file_path_adds_ensemble_members():
    """Repeating the flag kept only the last model, silently; it now adds members, as several paths do."""
    assert parse("infer", "--model_file_path", "a.pt").model_file_path == "a.pt"
    assert parse("infer", "--model_file_path", "a.pt", "--model_file_path", "b.pt").model_file_path == ["a.pt", "b.pt"]
    got = parse("evaluate", "--model_file_path", "a.pt", "b.ts", "--model_file_path", "c.onnx").model_file_path
    assert got == ["a.pt", "b.ts", "c.onnx"]
    assert parse("infer").model_file_path is None
