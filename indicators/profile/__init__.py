"""Profile studies over footprint cells (``tradeflow.model`` layout).

* :mod:`.volume` -- volume profile with POC and value area, high-/low-volume nodes, per-session
  and composite profiles.
* :mod:`.tpo` -- market profile (TPO): letters per period, initial balance and range extensions,
  single prints, poor highs and lows, TPO POC and value area; split and merged profiles.

Pure functions: frames in, frames out, no I/O; imports numpy, pandas and ``tradeflow.model`` only.
"""
from .tpo import TPOProfile, merge_profiles, split_profile, tpo_profile, tpo_profiles
from .volume import (VolumeProfile, composite_profile, session_profiles, value_area_bounds,
                     volume_nodes, volume_profile)

__all__ = ["VolumeProfile", "volume_profile", "value_area_bounds", "volume_nodes",
           "session_profiles", "composite_profile", "TPOProfile", "tpo_profile", "tpo_profiles",
           "merge_profiles", "split_profile"]
