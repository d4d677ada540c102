"""Classic technical indicators. Importing this package registers every TA-Lib function in
:data:`indicators.registry.REGISTRY` (see :mod:`indicators.ta.talib_funcs`); the registry imports
it by itself the first time it is used."""
from indicators.ta import talib_funcs  # noqa: F401  (registers on import)
from indicators.ta.talib_funcs import MA_TYPES, TALIB_INDICATORS, talib_indicator

__all__ = ["MA_TYPES", "TALIB_INDICATORS", "talib_indicator"]
from indicators.ta import extra  # noqa: F401,E402  (registers on import)
