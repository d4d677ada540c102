"""Profile studies over footprint cells (``tradeflow.model`` layout).

* :mod:`.volume` -- volume profile with POC and value area, high-/low-volume nodes, per-session
  and composite profiles.
* :mod:`.developing` -- developing POC and value area: per bar, those of the session so far.
* :mod:`.tpo` -- market profile (TPO): letters per period, initial balance and range extensions,
  single prints, poor highs and lows, TPO POC and value area; split and merged profiles.
* :mod:`.live` -- incremental forms for live charts (:class:`LiveVolumeProfile`,
  :class:`LiveTPO`), fed the bars and cells of each update, equal to the batch forms.

Pure functions: frames in, frames out, no I/O; imports numpy, pandas and ``tradeflow.model`` only.
"""
from .developing import developing_profile
from .live import LiveTPO, LiveVolumeProfile
from .tpo import TPOProfile, merge_profiles, split_profile, tpo_profile, tpo_profiles
from .volume import (VolumeProfile, composite_profile, session_profiles, value_area_bounds,
                     volume_nodes, volume_profile)

__all__ = ["VolumeProfile", "volume_profile", "value_area_bounds", "volume_nodes",
           "session_profiles", "composite_profile", "developing_profile", "TPOProfile",
           "tpo_profile", "tpo_profiles", "merge_profiles", "split_profile", "LiveVolumeProfile",
           "LiveTPO"]
