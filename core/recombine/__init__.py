"""Recombination engine: a bank of single-class layers and recipes that paste them into new label maps."""

from segbalance.core.recombine.compose import (
    DEFAULT_ORDER,
    STRATEGIES,
    MissingSourceError,
    Placement,
    Recipe,
    Rules,
    apply_recipe,
    compose,
    rules_for,
)
from segbalance.core.recombine.layers import LayerBank, build_layer_bank, decompose, load_layer_bank

__all__ = [
    "DEFAULT_ORDER",
    "STRATEGIES",
    "LayerBank",
    "MissingSourceError",
    "Placement",
    "Recipe",
    "Rules",
    "apply_recipe",
    "build_layer_bank",
    "compose",
    "decompose",
    "load_layer_bank",
    "rules_for",
]
