"""chatire: a realtime chat server on Twisted."""

__version__ = "0.1.0"
