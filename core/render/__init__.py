"""Renderers: turn (recombined) label maps into photos (pix2pixHD in pix2pixhd.py, copy-paste in copypaste.py)."""
