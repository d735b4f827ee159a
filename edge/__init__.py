"""hall-edge: the controller of a public day-labour market hall."""

import os
import sys

if sys.platform == "linux":
    # zoneinfo reads where zone files live from the interpreter's build configuration, and that
    # loads sysconfig's table of build variables (0.5 MiB, kept for the life of the process) unless
    # PYTHONTZPATH names the places.  These are CPython's and Debian's own defaults.
    _zone_path = "/usr/share/zoneinfo:/usr/lib/zoneinfo:/usr/share/lib/zoneinfo:/etc/zoneinfo"
    os.environ.setdefault("PYTHONTZPATH", _zone_path)

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hall-edge")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"
