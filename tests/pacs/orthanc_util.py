"""Helpers of the PACS tests: free loopback ports, the DICOMweb plugin's path, a handle on a running Orthanc."""

from __future__ import annotations

import glob
import json
import socket
from dataclasses import dataclass

_PLUGIN_GLOBS = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so", "/usr/lib/orthanc/libOrthancDicomWeb.so*",
                 "/usr/lib/*/orthanc/libOrthancDicomWeb.so*")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dicomweb_plugin() -> str | None:
    for pattern in _PLUGIN_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


@dataclass
class Orthanc:
    """A running Orthanc: REST / DICOMweb URLs, its DICOM AE and port, our listener's AE and port."""

    http: str
    dicomweb: str
    aet: str
    dicom_port: int
    listener_aet: str
    listener_port: int
    pid: int

    def get(self, path: str):
        import requests

        r = requests.get(self.http + path, timeout=10)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body):
        import requests

        r = requests.post(self.http + path, data=body if isinstance(body, (bytes, str)) else json.dumps(body),
                          timeout=60)
        r.raise_for_status()
        return r.json() if r.content else None

    def instances(self) -> set[str]:
        return set(self.get("/instances"))

    def find(self, level: str, query: dict) -> list[dict]:
        return self.post("/tools/find", {"Level": level, "Query": query, "Expand": True})
