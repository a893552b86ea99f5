"""Sensors shared by every simulator: map raster layers, BEV rasteriser, front camera."""
