"""Engine handlers: one concern per module (checkpoints, stats, TensorBoard, validation, ...)."""
