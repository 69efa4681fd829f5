"""The package version (one place; ``ubdiff_phys.__version__`` re-exports it)."""

__version__ = "0.1.0"
