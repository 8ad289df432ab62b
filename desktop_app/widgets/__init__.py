"""One widget or panel per module; the main window wires them together."""
