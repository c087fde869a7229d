"""Sources of stereo photos: each finds items and records them in the catalog in state discovered."""
