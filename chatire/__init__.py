"""chatire: a realtime chat server on Twisted."""

from importlib.metadata import PackageNotFoundError, version

try:
    #: The installed distribution's version: setup.py is the one place it is written.
    __version__ = version("chatire")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"


def version_line() -> str:
    """What `chatire --version` and `twistd chatire --version` print."""
    import platform

    from twisted import __version__ as twisted

    return f"chatire {__version__} (Twisted {twisted}, Python {platform.python_version()})"
