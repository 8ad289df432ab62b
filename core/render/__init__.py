"""Renderers: label maps -> RGB images behind one interface (core.render.base)."""
