#!/usr/bin/env bash
# The whole test suite: set up .venv, fetch test-only data, lint with ruff, run pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup_env.sh
# Test-only real data (ITK's anisotropic KmeansTest NIfTI): best effort, tests skip with a reason without it.
kmeans=/usr/share/doc/insighttoolkit5-examples/examples/Data/KmeansTest_T1UCharRaw.nii.gz
if [ ! -e "$kmeans" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  { apt-get install -y -q insighttoolkit5-examples || { apt-get update -q && apt-get install -y -q insighttoolkit5-examples; }; } \
    >/dev/null 2>&1 || echo "note: could not install insighttoolkit5-examples; its tests will be skipped"
fi
# Debian's Chromium for the viewer's end-to-end browser test (Playwright drives /usr/bin/chromium;
# `playwright install` is never run: browser downloads are not needed).
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  { apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }; } \
    >/dev/null 2>&1 || echo "note: could not install chromium; the viewer browser test will be skipped"
fi
# A real PACS for the DICOM SEG / DICOMweb / DIMSE tests (tests/pacs): Debian's Orthanc with its DICOMweb
# plugin, and dciodvfy (dicom3tools) to validate the written SEG objects.
if { ! command -v Orthanc >/dev/null 2>&1 || [ ! -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] \
     || ! command -v dciodvfy >/dev/null 2>&1; } && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  # the tests start their own Orthanc on free loopback ports (a system service, if one starts, is not used)
  { apt-get install -y -q orthanc orthanc-dicomweb dicom3tools \
      || { apt-get update -q && apt-get install -y -q orthanc orthanc-dicomweb dicom3tools; }; } \
    >/dev/null 2>&1 || echo "note: could not install orthanc / orthanc-dicomweb / dicom3tools; the PACS tests will be skipped"
fi
# A real Triton server for the Triton predictor/deploy tests: nvidia-pytriton bundles tritonserver 2.51.
# --no-deps: it pins numpy<2, which would downgrade the environment (the tests do not need that pin).
# Its Python-backend stub links Debian's libpython3.11, so only that interpreter's venv can use it.
if [ "$(.venv/bin/python -c 'import sys; print(sys.base_prefix)')" = /usr ] \
   && ! .venv/bin/python -c 'import pytriton' 2>/dev/null; then
  # (pip then reports pytriton's numpy pin as a "conflict": expected, filtered out)
  { .venv/bin/python -m pip -q --disable-pip-version-check install --no-deps "nvidia-pytriton==0.7.0" \
      && .venv/bin/python -m pip -q --disable-pip-version-check install sh pyzmq typer wrapt typing_inspect importlib_metadata; } \
    2> >(grep -v -E "is ignored: it is neither|dependency resolver does not currently|nvidia-pytriton .* requires numpy" >&2) \
    || echo "note: could not install nvidia-pytriton; the Triton tests will be skipped"
fi
.venv/bin/ruff check ai4med tests bench
# the layers of ../shared/ARCHITECTURE.md §2 (contracts in pyproject.toml [tool.importlinter])
.venv/bin/lint-imports
.venv/bin/python -m pytest -q -n 2 "$@"
