"""The SFU node registry: which workers are up, how loaded, and which room runs where."""
