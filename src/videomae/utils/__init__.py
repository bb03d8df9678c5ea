"""Small utilities used by the entry points: environment, config checks, instantiation."""
