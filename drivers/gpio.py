"""gpiozero's input and output devices, without the rest of gpiozero loaded at start.

``import gpiozero`` runs a package ``__init__`` that imports every device gpiozero has:
boards of LEDs and robots, SPI converters, the Pi's internal sensors, seven-segment fonts
(with pprint and importlib.resources behind them).  A hall makes four kinds of device: keys,
door sensors, lock outputs and a buzzer.  The rest cost 0.6 MiB of the idle daemon
(bench/memory_map.py) and 36 M of the 101 M instructions that importing gpiozero takes
(callgrind), ~5 % of the daemon's start.

So ``gpiozero`` is first registered as its package, with ``__path__`` but without its
``__init__`` run, and only the two device modules are imported.  Pin factories, found by
gpiozero's own entry-point lookup, import the submodules they need as usual.  The first time
anything asks the package itself for a name it does not hold yet (``from gpiozero import
Button``, the self-test's exceptions), its real ``__init__`` runs into the same module object.
It then reuses the submodules already loaded, so a class has one identity whichever way it
was imported.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any


def _register_package_without_init() -> None:
    if "gpiozero" in sys.modules:  # already whole (a test, a tool): nothing to save
        return
    spec = importlib.util.find_spec("gpiozero")
    if spec is None or spec.loader is None:
        raise ImportError("gpiozero is not installed", name="gpiozero")
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def run_init_on_first_miss(name: str) -> Any:
        # PEP 562: called only for names the module does not have.  Deleted first, so a name
        # the real __init__ does not define either raises AttributeError, not recursion.
        del package.__dict__["__getattr__"]
        loader.exec_module(package)
        return getattr(package, name)

    package.__dict__["__getattr__"] = run_init_on_first_miss
    sys.modules["gpiozero"] = package


def whole_package_loaded() -> bool:
    """Whether gpiozero's own ``__init__`` has run (tests ask)."""
    package: ModuleType | None = sys.modules.get("gpiozero")
    return package is not None and "__getattr__" not in package.__dict__


_register_package_without_init()

from gpiozero.input_devices import DigitalInputDevice  # noqa: E402
from gpiozero.output_devices import Buzzer, OutputDevice  # noqa: E402

__all__ = ["Buzzer", "DigitalInputDevice", "OutputDevice", "whole_package_loaded"]
