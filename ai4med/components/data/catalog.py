"""The pipelines registry: the image pipelines by their Clara names (lazy "module:attr" entries)."""

from ai4med.config.registry import Registry

_P = "ai4med.components.data.image_pipeline"

REGISTRY = Registry(
    "pipelines",
    {
        "SegmentationImagePipeline": f"{_P}:SegmentationImagePipeline",
        "ClassificationImagePipeline": f"{_P}:ClassificationImagePipeline",
        "SegmentationImagePipelineWithCache": f"{_P}:SegmentationImagePipelineWithCache",
        "ClassificationImagePipelineWithCache": f"{_P}:ClassificationImagePipelineWithCache",
    },
)
