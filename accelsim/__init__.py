"""accelsim: hardware/ML co-design of sparse neural-network accelerators."""

__version__ = "0.1.0"
