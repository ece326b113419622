"""The CLI answers fast: no heavy library is imported to build the parser or print help."""

import subprocess
import sys

HEAVY = ("torch", "nibabel", "SimpleITK", "pydicom", "monai", "scipy", "numpy")


def test_help_imports_no_heavy_module():
    code = (
        "import sys, contextlib, io\n"
        "import ai4med.cli as c\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try:\n"
        "        c.main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "assert 'dataconvert' in out.getvalue()\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "[]", res.stdout + res.stderr


def test_unknown_command_is_an_argparse_error():
    res = subprocess.run([sys.executable, "-m", "ai4med", "frobnicate"], capture_output=True, text=True)
    assert res.returncode == 2
    assert "invalid choice: 'frobnicate'" in res.stderr


def test_no_command_prints_help_and_exits_2():
    res = subprocess.run([sys.executable, "-m", "ai4med"], capture_output=True, text=True)
    assert res.returncode == 2 and "usage: ai4med" in res.stdout
