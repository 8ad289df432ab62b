"""Editing label maps by hand: pixel-exact tools, undo, revisions that never overwrite originals."""
