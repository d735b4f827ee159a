"""The LED vacancy screen: pure rendering, the page rotation, and the feature that drives the panel."""

from edge.display.feature import DisplayFeature, build

__all__ = ["DisplayFeature", "build"]
