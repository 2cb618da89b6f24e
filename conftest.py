"""pytest configuration for the whole repository: nbval compares printed numbers as floating
point allows on any CPU (tests/nbval_tolerance.py says how)."""

pytest_plugins = ["tests.nbval_tolerance"]
