"""`python -m ai4med.deploy`: the base inference application (the Docker images' entry point).

Same arguments as `ai4med deploy` (`ai4med.deploy.cli_args`); errors print one line and exit 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from ai4med.deploy.cli_args import add_deploy_args

    parser = argparse.ArgumentParser(
        prog="python -m ai4med.deploy",
        description="Base inference application: segment every volume / DICOM series of the input folder.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_deploy_args(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    from ai4med.deploy.app import run
    from ai4med.errors import UserError, user_message

    try:
        return int(run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UserError as exc:
        print(f"error: {user_message(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
