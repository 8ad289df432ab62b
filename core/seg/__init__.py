"""PSPNet segmentation: model, data pipeline, training loop, evaluation and the quality-gate scorer.

Submodules import torch; import them explicitly (core.seg.model, core.seg.train, ...) so that
importing `core.seg` itself stays cheap.
"""
