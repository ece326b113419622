"""The deploy app's own names: seed 003's `TRTISScanWindowInferer`, and where its `TRTISModelLoader`
and writers live (`ai4med.inference.loaders`, `ai4med.components.writers.prediction`).

* `TRTISScanWindowInferer`: the scanning-window inferer of training/validation, running
  client-side; its windows go in batches to whatever model the app loaded (Triton, or a
  local TorchScript / ONNX Runtime model). `ip` / `port` / `protocol` are the defaults of
  the Triton connection; the app overrides them at run time (flag, environment variable),
  and `roi_size` comes from `model_config.json`'s `network_input_size` unless given.
* `TRTISModelLoader`: a model served by Triton; its name is `model_config.json`'s
  `model_name` (else the `name:` of the `config.pbtxt` named by `model_spec_file_name`).
* `MhdWriter` / `PublishWriter`: the output and publish folders' writers (see their module).

Example:
    >>> import os, tempfile, numpy as np
    >>> from ai4med.common.constants import ImageProperty
    >>> from ai4med.common.medical_image import MedicalImage
    >>> from ai4med.common.transform_ctx import TransformContext
    >>> img = MedicalImage(np.zeros((1, 4, 4, 4), np.float32), "CDHW")
    >>> img.set_property(ImageProperty.FILENAME, "/input/case 1.nii.gz")
    >>> ctx = TransformContext({"image": img, "model": img.new_image(np.ones((1, 4, 4, 4), np.uint8))})
    >>> os.path.basename(MhdWriter().write(ctx, tempfile.mkdtemp()))
    'case 1.mhd'
"""

from __future__ import annotations

import logging

from ai4med.components.inferers.triton_predictor import FailFastTritonContext
from ai4med.components.inferers.trtis_inferer import TRTISScanWindowInferer
from ai4med.components.writers.prediction import MhdWriter, PublishWriter
from ai4med.inference.loaders import TRTISModelLoader, pbtxt_model_name

__all__ = [
    "TRTISScanWindowInferer",
    "TRTISModelLoader",
    "FailFastTritonContext",
    "MhdWriter",
    "PublishWriter",
    "pbtxt_model_name",
]

logger = logging.getLogger(__name__)
