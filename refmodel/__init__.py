"""refmodel: an executable reference model of Linux 5.10 memory management (x86-64)."""

__version__ = "0.1.0"
