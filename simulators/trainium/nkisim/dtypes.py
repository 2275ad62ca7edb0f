"""NKI data types as numpy dtypes (bfloat16 and fp8 from ml_dtypes, so rounding is real)."""

from __future__ import annotations

import ml_dtypes
import numpy as np

float32 = np.dtype(np.float32)
bfloat16 = np.dtype(ml_dtypes.bfloat16)
float16 = np.dtype(np.float16)
tfloat32 = np.dtype(np.float32)  # stored as fp32: TensorE rounding of tf32 inputs is not modelled
float8_e4m3 = np.dtype(ml_dtypes.float8_e4m3fn)
float8_e5m2 = np.dtype(ml_dtypes.float8_e5m2)
int8 = np.dtype(np.int8)
uint8 = np.dtype(np.uint8)
int16 = np.dtype(np.int16)
uint16 = np.dtype(np.uint16)
int32 = np.dtype(np.int32)
uint32 = np.dtype(np.uint32)
bool_ = np.dtype(np.uint8)  # NKI stores bool as uint8

_FLOATS = {float32, bfloat16, float16, float8_e4m3, float8_e5m2}


def as_dtype(d) -> np.dtype:
    """Accept NKI dtypes, numpy dtypes/types and their names."""
    if type(d) is np.dtype or isinstance(d, np.dtype):
        return d
    if d is None:
        return float32
    if isinstance(d, str):
        names = {"float32": float32, "bfloat16": bfloat16, "float16": float16, "int32": int32, "bool": bool_}
        if d in names:
            return names[d]
    if d is bool or d is np.bool_:
        return bool_
    return np.dtype(d)


def is_float(d: np.dtype) -> bool:
    return d in _FLOATS or np.issubdtype(d, np.floating)


def promote(dtypes: list[np.dtype], has_float_scalar: bool) -> np.dtype:
    """NKI promotion: (float,int)->float; floats -> wider, fp16+bf16 -> fp32; ints -> wider; float scalars are fp32."""
    ds = list(dict.fromkeys(dtypes))
    if has_float_scalar:
        ds.append(float32)
    if not ds:
        return float32
    floats = [d for d in ds if is_float(d)]
    if floats:
        if len(floats) == 1:
            return floats[0]
        best = max(floats, key=lambda d: d.itemsize)
        if sum(1 for d in floats if d.itemsize == best.itemsize) > 1:
            return float32 if best.itemsize <= 4 else best
        return best
    best = max(ds, key=lambda d: d.itemsize)
    if any(np.issubdtype(d, np.signedinteger) for d in ds) and any(np.issubdtype(d, np.unsignedinteger) for d in ds):
        return float32 if best.itemsize >= 4 else int32
    return best


def compute_dtype(d: np.dtype) -> np.dtype:
    """Engines compute internally in fp32; integer data stays integer."""
    return float32 if is_float(d) else np.dtype(np.int32) if d.itemsize <= 4 else d
