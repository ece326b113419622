"""Self-configuration: `ai4med plan` turns a dataset into a tuned, readable MMAR.

- `dataset`: read an MSD `dataset.json` or an ai4med datalist into cases + modalities.
- `fingerprint`: per-case geometry, intensity and label statistics (parallel, cached).
- `rules`: one function per planning rule, each naming the nnU-Net v2 rule it follows.
- `memory`: peak memory and time of one training step of the planned network, measured.
- `planner`: the rules applied to a fingerprint -> `plans.json`.
- `calibrate`: a measured training iteration of the written MMAR, to re-fit the iterations of CPU budgets.
- `mmar`: plans -> `config/config_train.json`, `environment.json`, a k-fold datalist, `commands/`.
- `postprocess`: per-class keep-largest-component choice from cross-validation predictions.

Nothing here is imported by `import ai4med`.
"""
