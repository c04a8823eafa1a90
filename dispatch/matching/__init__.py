"""Driver matching: H3 driver index, geometry, strategies and the matcher."""
