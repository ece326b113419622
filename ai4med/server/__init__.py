"""ai4med.server: the AI-assisted annotation (AIAA) server.

`create_app(settings)` builds a FastAPI app serving the AIAA v1 REST contract
(`/v1/models`, `/v1/segmentation`, `/v1/dextr3d`, `/v1/deepgrow`, `/v1/inference`,
`/v1/mask2polygon`, `/v1/fixpolygon`, `/session/`), an admin API, `/logs` and a web
viewer at `/viewer`. One router per resource; engines run on one worker per device.

Nothing heavy is imported here, so `ai4med.server.cli_args` stays cheap for the CLI.

Example:
    >>> from ai4med.server.cli_args import add_serve_args
    >>> import argparse
    >>> p = argparse.ArgumentParser(); add_serve_args(p)
    >>> p.parse_args(["--config", "pool.json"]).port
    5000
"""
