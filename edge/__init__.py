"""hall-edge: the controller of a public day-labour market hall."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hall-edge")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"
