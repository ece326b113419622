"""A real Orthanc PACS for the tests: Debian's `orthanc` + `orthanc-dicomweb` on free loopback ports.

`scripts/test.sh` installs both packages when missing; without them these tests skip with a
reason. The server gets a temporary storage folder and a generated configuration (DICOMweb
plugin on, our listener known as the modality `AI4MED`), is waited for until its REST API
answers, and is stopped by its PID at the end of the session.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from orthanc_util import Orthanc, dicomweb_plugin, free_port  # noqa: E402


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    exe = shutil.which("Orthanc")
    plugin = dicomweb_plugin()
    if exe is None or plugin is None:
        pytest.skip("Debian's orthanc / orthanc-dicomweb are not installed (scripts/test.sh installs them)")
    root = tmp_path_factory.mktemp("orthanc")
    http_port, dicom_port, listener_port = free_port(), free_port(), free_port()
    config = {
        "Name": "ai4med-tests", "StorageDirectory": str(root / "db"), "IndexDirectory": str(root / "db"),
        "HttpPort": http_port, "DicomPort": dicom_port, "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
        "Plugins": [plugin], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "DicomModalities": {"ai4med": ["AI4MED", "127.0.0.1", listener_port]},
        "DicomAlwaysAllowStore": True, "DicomCheckCalledAet": False, "UnknownSopClassAccepted": True,
        "StableAge": 2, "HttpTimeout": 60, "ConcurrentJobs": 2,
    }
    config = {k: v for k, v in config.items() if v is not None}
    cfg = root / "orthanc.json"
    cfg.write_text(json.dumps(config, indent=1))
    log = open(root / "orthanc.log", "wb")
    proc = subprocess.Popen([exe, str(cfg)], stdout=log, stderr=subprocess.STDOUT, cwd=str(root))
    server = Orthanc(f"http://127.0.0.1:{http_port}", f"http://127.0.0.1:{http_port}/dicom-web", "ORTHANC",
                     dicom_port, "AI4MED", listener_port, proc.pid)
    import requests

    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            log.close()
            pytest.fail(f"Orthanc exited with {proc.returncode}:\n{(root / 'orthanc.log').read_text()[-3000:]}")
        try:
            if requests.get(server.http + "/system", timeout=2).ok and \
                    requests.get(server.dicomweb + "/studies", timeout=5).status_code == 200:
                break
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"Orthanc did not answer within 60 s:\n{(root / 'orthanc.log').read_text()[-3000:]}")
        time.sleep(0.2)
    yield server
    # through Popen, which signals nothing once the process is reaped: this machine's PIDs wrap within a
    # test run (pid_max 32768), and a bare os.kill of a stale PID could hit another process
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


@pytest.fixture
def upload(orthanc):
    """Upload DICOM files to Orthanc through its REST API (not through the code under test)."""

    def _upload(files):
        ids = []
        for f in files:
            with open(f, "rb") as fh:
                ids.append(orthanc.post("/instances", fh.read())["ID"])
        return ids

    return _upload
