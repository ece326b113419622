"""ai4med: an open, PyTorch-based medical-imaging AI toolkit (Clara Train's API, re-implemented).

`import ai4med` is deliberately cheap: sub-packages import their heavy dependencies
(torch, nibabel, SimpleITK, pydicom) only where they are used.
"""

__version__ = "0.1.0"
