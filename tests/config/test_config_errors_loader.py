"""ConfigError formatting, JSON pointers, and load_json failures (file, line, column)."""

from __future__ import annotations

import os

import pytest

from ai4med.config.errors import ConfigError, join_pointer, split_pointer
from ai4med.config.loader import load_json
from ai4med.errors import UserError


def test_config_error_is_a_user_error_with_location() -> None:
    err = ConfigError(
        "unknown models component 'SegResNett'; did you mean 'SegResnet'?",
        file="config_train.json", pointer="/train/model",
    )
    assert isinstance(err, UserError)
    assert str(err) == "config_train.json: /train/model: unknown models component 'SegResNett'; did you mean 'SegResnet'?"
    assert (err.file, err.pointer, err.line) == ("config_train.json", "/train/model", None)


def test_config_error_without_pointer_and_with_line() -> None:
    assert str(ConfigError("oops", file="a.json")) == "a.json: oops"
    assert str(ConfigError("Expecting value", file="a.json", line=3, column=7)) == "a.json: line 3 column 7: Expecting value"


def test_pointer_escaping_roundtrip() -> None:
    p = join_pointer("", "train", "a/b", "c~d", 3)
    assert p == "/train/a~1b/c~0d/3"
    assert split_pointer(p) == ["train", "a/b", "c~d", "3"]
    assert split_pointer("") == []
    with pytest.raises(ValueError):
        split_pointer("train/model")


def test_load_json_reads_objects(tmp_path) -> None:
    f = tmp_path / "c.json"
    f.write_text('{"epochs": 5, "train": {"model": {"name": "SegResnet"}}}')
    assert load_json(f) == {"epochs": 5, "train": {"model": {"name": "SegResnet"}}}


def test_malformed_json_names_file_line_and_column(tmp_path) -> None:
    f = tmp_path / "config_train.json"
    f.write_text('{\n  "epochs": 5\n  "train": {}\n}\n')
    with pytest.raises(ConfigError) as info:
        load_json(f)
    err = info.value
    assert (err.line, err.column) == (3, 3)
    assert str(err) == f"{f}: line 3 column 3: Expecting ',' delimiter"


def test_trailing_comma_is_reported(tmp_path) -> None:
    f = tmp_path / "environment.json"
    f.write_text('{"DATA_ROOT": "/data",}')
    with pytest.raises(ConfigError, match=r"environment.json: line 1 column 23: Expecting property name"):
        load_json(f)


def test_missing_file_is_named(tmp_path) -> None:
    f = tmp_path / "nope" / "config_train.json"
    with pytest.raises(ConfigError) as info:
        load_json(f)
    assert str(info.value) == f"{f}: cannot read the file: it does not exist"
    assert info.value.file == os.fspath(f)


def test_folder_and_binary_files_are_unreadable(tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file: it is a folder"):
        load_json(tmp_path)
    f = tmp_path / "bin.json"
    f.write_bytes(b"\xff\xfe\x00{")
    with pytest.raises(ConfigError, match=r"bin.json: cannot read the file: not UTF-8"):
        load_json(f)


def test_duplicate_keys_warn_last_wins(tmp_path, caplog) -> None:
    f = tmp_path / "dup.json"
    f.write_text('{"epochs": 1, "epochs": 2}')
    assert load_json(f) == {"epochs": 2}
    assert "'epochs' appears twice" in caplog.text
