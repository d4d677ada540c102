"""Profile studies over footprint cells (``tradeflow.model`` layout).

* :mod:`.volume` -- volume profile with POC and value area, high-/low-volume nodes, per-session
  and composite profiles.

Pure functions: frames in, frames out, no I/O; imports numpy, pandas and ``tradeflow.model`` only.
"""
from .volume import (VolumeProfile, composite_profile, session_profiles, value_area_bounds,
                     volume_nodes, volume_profile)

__all__ = ["VolumeProfile", "volume_profile", "value_area_bounds", "volume_nodes",
           "session_profiles", "composite_profile"]
