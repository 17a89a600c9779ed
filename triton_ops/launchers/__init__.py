"""Launchers: per launch plan (shapes, strides, dtypes), the grid, tiles and every size/stride
argument decided once (a cached ``runtime.LaunchPlan``); a call allocates and launches."""
