"""autoq: automated mixed-precision quantization search for CNNs on embedded targets."""

__version__ = "0.1.0"
__all__ = ["__version__"]
