"""Training runs: the shared runtime, their rows and status words, and what the views read of them."""
