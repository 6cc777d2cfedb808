"""accelsim: hardware/ML co-design of sparse neural-network accelerators."""

__version__ = "0.2.0"
