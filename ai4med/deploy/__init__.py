"""The base inference application (seed 003): input folder -> segmentations + render-server files.

`python -m ai4med.deploy` (or `ai4med deploy`) runs it; see `ai4med.deploy.app` for what it
does, `ai4med.deploy.settings` for its folders and environment variables, and
`deploy/README.md` for the Docker images and the local / Triton modes. Nothing heavy is
imported here.
"""
