"""segbalance engine: headless, never imports Qt."""

__version__ = "0.1.0"
