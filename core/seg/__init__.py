"""PSPNet segmentation: model, data pipeline, training loop, evaluation and the quality-gate scorer.

Submodules import torch; import them explicitly (core.seg.model, core.seg.train, ...) so that
importing `core.seg` itself stays cheap.
"""

# the ResNet depths PSPNet is built on (core.seg.model holds their blocks); here, torch-free, so the CLI and the
# app list them without loading torch
BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101")
