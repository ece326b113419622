"""The checked-in seed copies are the seed's text: same strings, numbers and booleans in the same
order, after only the word-level repairs each copy lists (seed_texts.COPIES)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import seed_texts
from seed_helpers import SEEDS

TOKEN = re.compile(r'"[^"\n]*"|-?\d+(?:\.\d+)?(?:e-?\d+)?|\btrue\b|\bfalse\b')
WHERE = [SEEDS, Path("/work/shared/seeds")]


def seed_file(name: str) -> Path:
    found = [d / name for d in WHERE if (d / name).is_file()]
    if not found:
        pytest.skip(f"seed file {name} not found in {', '.join(map(str, WHERE))}; the copies are still run")
    return found[0]


def passage(name: str, first: int, last: int, repairs: list[tuple[str, str]]) -> str:
    lines = seed_file(name).read_text(encoding="utf-8").splitlines()[first - 1:last]
    text = "\n".join(line for line in lines if not line.strip().startswith("```")) + "\n"
    for old, new in repairs:
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize("name, first, last, attr, repairs", seed_texts.COPIES, ids=[c[3] for c in seed_texts.COPIES])
def test_copy_is_the_seed_text(name, first, last, attr, repairs):
    text = passage(name, first, last, repairs)
    if attr in seed_texts.HEADS:
        text = passage(*seed_texts.HEADS[attr]) + text
    copy = getattr(seed_texts, attr)
    json.loads(copy)  # and it is JSON
    added = {'"validate"', '"inferer"', '"model_loader"'}  # the section keys the repairs add
    seed_tokens = [t for t in TOKEN.findall(text) if t not in added]
    copy_tokens = [t for t in TOKEN.findall(copy) if t not in added]
    assert copy_tokens == seed_tokens


@pytest.mark.parametrize("line", [182, 204, 252], ids=["MyAddRandomConstant", "MyNumpyLoader", "SampleComputeAverage"])
def test_byoc_code_is_the_seeds(line):
    """tests/config/data/CustomCode.py (run by test_seed002_byoc.py) holds seed 002's three numpy
    examples: each seed line, whitespace collapsed (the page flattened the code), appears in it."""
    from test_seed002_byoc import CUSTOM_CODE

    def collapse(text: str) -> str:
        return re.sub(r"\s+", " ", text).strip()

    seed_line = seed_file("002_31f7665595c534f5.txt").read_text(encoding="utf-8").splitlines()[line - 1]
    assert len(seed_line) > 800 and collapse(seed_line) in collapse(CUSTOM_CODE.read_text())
