"""Arguments of `ai4med deploy` / `python -m ai4med.deploy` (argparse only: fast `--help`).

Every folder and connection setting has a flag and an environment variable; a flag wins
over the variable, the variable over the default (see `ai4med.deploy.settings`).

Example:
    >>> import argparse
    >>> p = argparse.ArgumentParser(); add_deploy_args(p)
    >>> a = p.parse_args(["--app", "my_app", "--input", "in", "--triton_url", "grpc://h:8001"])
    >>> a.app, a.input, a.output, a.triton_url
    ('my_app', 'in', None, 'grpc://h:8001')
"""

from __future__ import annotations

import argparse

__all__ = ["add_deploy_args"]


def add_deploy_args(p: argparse.ArgumentParser) -> None:
    """The deploy app's flags (the CLI's `deploy` command and `python -m ai4med.deploy`)."""
    g = p.add_argument_group("folders")
    g.add_argument("--app", default=None,
                   help="application folder holding config/config_inference.json, config/model_config.json, "
                        "config/config_render.json (and models/) (env AI4MED_DEPLOY_APP; default: the bundled "
                        "base application)")
    g.add_argument("-i", "--input", default=None,
                   help="input folder: NIfTI / MetaImage volumes and DICOM series folders "
                        "(env AI4MED_DEPLOY_INPUT; default /input)")
    g.add_argument("-o", "--output", default=None,
                   help="segmentations, <input name>.mhd + .raw (env AI4MED_DEPLOY_OUTPUT; default /output)")
    g.add_argument("--publish", default=None,
                   help="render server files: image.mhd, image.seg.mhd, config_render.json "
                        "(env AI4MED_DEPLOY_PUBLISH; default /publish)")
    g.add_argument("--logs", default=None, help="log folder, deploy.log (env AI4MED_DEPLOY_LOGS; default /logs)")
    g.add_argument("--no_publish", action="store_true", help="write nothing to the publish folder")
    g.add_argument("--series_filter", default=None, metavar="REGEX",
                   help="segment only the DICOM series whose Modality or SeriesDescription matches this "
                        "case-insensitive regular expression (searched, e.g. CT, 'portal|venous', '^MR$'); "
                        "NIfTI / MetaImage volumes are not filtered (env AI4MED_DEPLOY_SERIES_FILTER; "
                        "default: every series)")

    d = p.add_argument_group("PACS (DICOMweb / DIMSE; results go back as DICOM SEG)")
    d.add_argument("--dicomweb", default=None, metavar="URL",
                   help="read the input study from this DICOMweb root (QIDO-RS / WADO-RS) and store the SEG back "
                        "(STOW-RS), e.g. http://pacs:8042/dicom-web (env AI4MED_DEPLOY_DICOMWEB); needs --study")
    d.add_argument("--study", default=None, metavar="UID", help="with --dicomweb: the StudyInstanceUID")
    d.add_argument("--series", default=None, metavar="UID",
                   help="with --dicomweb: only this SeriesInstanceUID (default: every image series of the study)")
    d.add_argument("--listen", default=None, metavar="AE:PORT",
                   help="run as a DICOM listener (C-STORE SCP) with this AE title and port; each received study "
                        "is segmented and its SEG sent to --destination (env AI4MED_DEPLOY_LISTEN)")
    d.add_argument("--destination", default=None, metavar="AE@HOST:PORT",
                   help="with --listen: where SEGs are sent by C-STORE (env AI4MED_DEPLOY_DESTINATION)")
    d.add_argument("--spool", default=None,
                   help="with --listen: received studies are kept here until processed (env AI4MED_DEPLOY_SPOOL; "
                        "default /spool)")
    d.add_argument("--output_format", choices=["mhd", "seg"], default=None,
                   help="mhd: <input name>.mhd + .raw; seg: <input name>.seg.dcm, a DICOM Segmentation of a DICOM "
                        "input (env AI4MED_DEPLOY_OUTPUT_FORMAT; default mhd, seg with --dicomweb / --listen)")

    m = p.add_argument_group("model (local or Triton)")
    m.add_argument("--model", default=None,
                   help="run this exported model locally: TorchScript (.ts) or ONNX (.onnx) from `ai4med export` "
                        "(env AI4MED_DEPLOY_MODEL)")
    m.add_argument("--triton_url", default=None,
                   help="run on Triton at [http://|grpc://]HOST:PORT (env AI4MED_TRITON_URL, then the seed's "
                        "NVIDIA_CLARA_TRTISURI; default: the config's inferer ip/port)")
    m.add_argument("--triton_protocol", choices=["http", "grpc"], default=None,
                   help="Triton protocol (env AI4MED_TRITON_PROTOCOL; default: the URL's scheme, else the "
                        "config's, else http)")
    m.add_argument("--triton_model_name", default=None,
                   help="the model's name on the server (default: model_config.json's model_name)")
    m.add_argument("--triton_timeout", type=float, default=None,
                   help="seconds allowed to reach the server and for each request (env AI4MED_TRITON_TIMEOUT; "
                        "default 10)")
    m.add_argument("--runtime", choices=["auto", "onnxruntime", "openvino"], default=None,
                   help="what runs a local ONNX model: auto (OpenVINO on a CPU, 1.7x ONNX Runtime on the bench "
                        "UNet; ONNX Runtime with CUDA on a GPU), onnxruntime or openvino (CPU only) "
                        "(env AI4MED_DEPLOY_RUNTIME; default auto). TorchScript models and Triton are unaffected")
    m.add_argument("--precision", choices=["fp32", "int8"], default=None,
                   help="local model: fp32 (default), or int8: the INT8 model `ai4med export --int8` wrote beside it "
                        "(<name>_int8.xml, OpenVINO on the CPU) (env AI4MED_DEPLOY_PRECISION)")
    m.add_argument("--device", default=None, help="local model: cpu, cuda, cuda:1 (default: cuda if available)")

    r = p.add_argument_group("run")
    r.add_argument("--set", nargs="*", action="extend", default=[], dest="overrides_set", metavar="KEY=VALUE",
                   help="override config variables / top-level values of config_inference.json")
    r.add_argument("--no_progress", action="store_true", help="no progress bar")
    r.add_argument("--check", action="store_true",
                   help="load and check the application folder (configs, transforms, local model file), then exit; "
                        "no input is read and no server is contacted")
    r.add_argument("--init_app", default=None, metavar="DIR",
                   help="create an application folder DIR from the base application (config/ files that exist "
                        "are kept), then exit")
    r.add_argument("--from_export", default=None, metavar="EXPORT_DIR",
                   help="with --init_app: take model_config.json and model.ts / model.onnx / triton/ from this "
                        "`ai4med export` output folder")
