"""The one inference path: open a model (`models.open_model`), run a case through
pre-transforms -> inferer -> post-transforms -> back to the input grid -> writers
(`pipeline.CasePipeline`, with per-stage timings), over many cases (`runner.run_cases`).

`ai4med infer` / `evaluate`, the annotation server's engines and the deploy app all go through
these; the layer sits between the components and the workflows and imports no training code.
Nothing heavy is imported here: import the submodules.
"""
