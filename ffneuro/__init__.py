"""ffneuro: Forward-Forward CNNs as independent local-learning units, with explicit cost accounting."""

__version__ = "0.1.0"
