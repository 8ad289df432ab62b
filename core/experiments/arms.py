"""The experiment's arms and which generated pairs each trains on."""

from __future__ import annotations

ALL_ARMS = ("baseline", "traditional", "style", "copypaste", "rcs", "single", "multi", "recon", "recon-filter",
            "oracle")
GAN_ARMS = ("single", "multi", "recon")
# an arm that trains on another arm's pairs (the same job, so the comparison isolates the training change)
PAIR_SOURCE = {"recon-filter": "recon"}
NOISY_ARMS = {"recon-filter": 1.25}  # arm -> train-seg's noisy-pixel factor (FreeMask's setting)


def pair_source(arm: str) -> str | None:
    """The arm whose generated pairs `arm` trains on; None for arms without generated pairs."""
    src = PAIR_SOURCE.get(arm, arm)
    return src if src in (*GAN_ARMS, "copypaste", "oracle") else None
