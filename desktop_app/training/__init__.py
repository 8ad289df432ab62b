"""Training panel: `TrainingPanel(workspace, parent)` starts train-seg runs and shows them live from the DB."""

from segbalance.desktop_app.training.panel import TrainingPanel

__all__ = ["TrainingPanel"]
