"""Experiments: the protocol that measures whether balancing helps, with its evidence."""
