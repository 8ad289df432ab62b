"""Renderers: label maps -> RGB images behind one interface (core.render.interface): pix2pixHD, copy-paste,
and the sample dataset's procedural renderer."""
