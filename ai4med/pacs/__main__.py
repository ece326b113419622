"""`python -m ai4med.pacs`: look at and move studies on a PACS (DICOMweb or DIMSE) from a shell.

    python -m ai4med.pacs studies  URL [--patient ID]           QIDO-RS: one study per line (UID, patient, date)
    python -m ai4med.pacs series   URL STUDY                    QIDO-RS: the series of a study
    python -m ai4med.pacs retrieve URL STUDY [--series UID] --out DIR   WADO-RS into DIR/<series UID>/
    python -m ai4med.pacs store    URL FILE...                  STOW-RS, one request
    python -m ai4med.pacs send     AE@HOST:PORT FILE...         C-STORE, one association
    python -m ai4med.pacs echo     AE@HOST:PORT                 C-ECHO

A PACS error prints one line naming the server and the UID and exits with status 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ai4med.pacs", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("studies", help="QIDO-RS study search")
    s.add_argument("url")
    s.add_argument("--patient", default=None, help="PatientID to match")
    s = sub.add_parser("series", help="QIDO-RS series of a study")
    s.add_argument("url")
    s.add_argument("study")
    s = sub.add_parser("retrieve", help="WADO-RS a series (default: every image series) into a folder")
    s.add_argument("url")
    s.add_argument("study")
    s.add_argument("--series", default=None)
    s.add_argument("--out", required=True, help="folder; each series lands in <out>/<series UID>/")
    s = sub.add_parser("store", help="STOW-RS DICOM files")
    s.add_argument("url")
    s.add_argument("files", nargs="+")
    s = sub.add_parser("send", help="C-STORE DICOM files to AE@HOST:PORT")
    s.add_argument("destination")
    s.add_argument("files", nargs="+")
    s.add_argument("--calling_ae", default="AI4MED")
    s = sub.add_parser("echo", help="C-ECHO AE@HOST:PORT")
    s.add_argument("destination")
    s.add_argument("--calling_ae", default="AI4MED")
    return p


def _run(args: argparse.Namespace) -> None:
    if args.command in ("send", "echo"):
        from ai4med.pacs.dimse import echo, parse_ae_address, send_files

        ae, host, port = parse_ae_address(args.destination)
        if args.command == "echo":
            echo(host, port, ae, args.calling_ae)
            print(f"{args.destination}: C-ECHO ok")
        else:
            for uid in send_files(args.files, host, port, ae, args.calling_ae):
                print(uid)
        return
    from ai4med.pacs.dicomweb import DicomWebClient, retrieve_volume_series

    client = DicomWebClient(args.url)
    if args.command == "studies":
        for st in client.find_studies(**({"PatientID": args.patient} if args.patient else {})):
            vals = [(st.get(t) or {}).get("Value", [""])[0] for t in ("0020000D", "00100020", "00080020")]
            print("\t".join(str(v) for v in vals))
    elif args.command == "series":
        for s in client.find_series(args.study):
            print(f"{s.series_uid}\t{s.modality}\t{s.instances}\t{s.description}")
    elif args.command == "retrieve":
        for uid, files in retrieve_volume_series(client, args.study, args.series, args.out).items():
            print(f"{uid}\t{len(files)}")
    elif args.command == "store":
        for uid in client.store(args.files):
            print(uid)


def main(argv: Sequence[str] | None = None) -> int:
    from ai4med.errors import UserError, user_message

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        _run(args)
    except UserError as exc:
        print(f"error: {user_message(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
