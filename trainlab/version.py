"""The package version, in the bottom layer so that any module (the run directory's version check) can read it."""

__version__ = "0.1.0"
