"""The live spine: the :class:`Pipeline` (sources -> validation -> micro-batched store writes ->
aggregation) and the :class:`Hub` charts subscribe to."""
from .hub import (ChartState, ExternalBars, Hub, Resync, Snapshot, Subscription,  # noqa: F401
                  Update)
from .pipeline import Overloaded, Pipeline, Rejected  # noqa: F401
