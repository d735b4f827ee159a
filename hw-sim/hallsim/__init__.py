"""hall-sim: an independent simulation of the hall's hardware, at the hardware boundary.

It speaks bytes on pseudo-terminals (printer, card reader), pin levels through
gpiozero's pin factory, and frames through the display's device interface.
It never imports ``edge`` or ``drivers``: it starts the daemon as a process.
"""
