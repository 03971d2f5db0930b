"""LightGBM predictions of one row without the Python wrapper's per-call conversions.

``Booster.predict`` on one numpy row costs 0.1-1.5 ms, mostly checking and converting
its input; LightGBM's C API has a path for exactly this case
(``LGBM_BoosterPredictForMatSingleRowFast``: the booster, prediction type and row width
are fixed once, each call passes a pointer to one row of float64) that costs a few
microseconds. It runs the same trees on the same doubles as ``Booster.predict``, so the
predictions are the same numbers.

A :class:`RowPredictor` keeps one output buffer: it is not safe to call from several
threads at once (the service scores on one core; give each thread its own).
"""

from __future__ import annotations

import ctypes
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
from lightgbm.basic import _LIB, _c_str, _safe_call

__all__ = ["RowPredictor"]

Kind = Literal["normal", "raw", "contrib"]
_TYPES = {"normal": 0, "raw": 1, "contrib": 3}
_FLOAT64 = 1


class RowPredictor:
    """One prediction type of one Booster for single rows of ``width`` float64 values."""

    def __init__(self, booster: lgb.Booster, width: int, kind: Kind = "normal") -> None:
        self.booster = booster  # kept alive as long as the fast config points into it
        self.width = width
        self.kind = kind
        self._config = ctypes.c_void_p()
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(_TYPES[kind]),
                ctypes.c_int(0),
                ctypes.c_int(-1),
                ctypes.c_int(_FLOAT64),
                ctypes.c_int32(width),
                _c_str("num_threads=1"),
                ctypes.byref(self._config),
            )
        )
        self._out = np.zeros(width + 1 if kind == "contrib" else 1, dtype=np.float64)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._length = ctypes.c_int64()
        self._length_ref = ctypes.byref(self._length)

    def __call__(self, row: np.ndarray) -> np.ndarray:
        """The prediction of one row (float64, C-contiguous, ``width`` values): a fresh
        array of one value, or of ``width + 1`` contributions (the last is the bias)."""
        if row.dtype != np.float64 or row.shape != (self.width,) or not row.flags.c_contiguous:
            raise ValueError(f"expected a contiguous float64 row of {self.width} values")
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFast(
                self._config, row.ctypes.data_as(ctypes.c_void_p), self._length_ref, self._out_ptr
            )
        )
        return self._out.copy()

    def __del__(self) -> None:
        config = getattr(self, "_config", None)
        if config is not None and config.value:
            _LIB.LGBM_FastConfigFree(config)
            config.value = None

    def __getstate__(self) -> dict[str, Any]:
        raise TypeError("a RowPredictor holds a native handle and cannot be pickled")
