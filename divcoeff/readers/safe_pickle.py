"""Reading the benchmark pickles (MiniImageNet, FC100, tiered-ImageNet) without running their code.

These benchmarks are only distributed as pickles. A pickle is a small program: every global
it names is imported and may be called. This unpickler resolves only the names that numpy
arrays, numpy scalars and dtypes, and plain containers need, from a fixed table (nothing is
imported by name), and refuses object dtypes (whose elements would be arbitrary objects).
Anything else — `os.system`, a class from some package — stops the load with an error that
names the file and the global. Python 2 pickles (the original files) load with
``encoding="latin1"``, which numpy documents for arrays pickled by Python 2.
"""
from __future__ import annotations

import codecs
import collections
import os
import pickle
from typing import Any

import numpy as np
from numpy._core import multiarray as _multiarray
from numpy._core import numeric as _numeric


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle that asks for something other than plain arrays and containers."""


def _plain_dtype(*args: Any) -> np.dtype:
    dt = np.dtype(*args)
    if dt.hasobject:
        raise UnsafePickleError(f"object dtype {dt!r}: its elements would be arbitrary Python objects")
    return dt


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not np.ndarray:
        raise UnsafePickleError(f"array subclass {subtype!r} is not allowed")
    return _multiarray._reconstruct(subtype, shape, dtype)


def _scalar(dtype: Any, *args: Any) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError(f"numpy scalar of dtype {dtype!r} is not allowed")
    return _multiarray.scalar(dtype, *args)


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError(f"array of dtype {dtype!r} is not allowed")
    return _numeric._frombuffer(buf, dtype, shape, order)


def _latin1_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    # Protocol 2 stores bytes as _codecs.encode(<str>, "latin1"); nothing else is needed.
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"_codecs.encode with {type(obj).__name__}, {encoding!r} is not allowed")
    return codecs.encode(obj, encoding, errors)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _plain_dtype,
    ("_codecs", "encode"): _latin1_encode,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "complex"): complex,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):  # numpy 1.x and 2.x spellings
    _ALLOWED[(_module, "_reconstruct")] = _reconstruct
    _ALLOWED[(_module, "scalar")] = _scalar
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_module, "_frombuffer")] = _frombuffer


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, where: str):
        super().__init__(file, encoding="latin1")
        self._where = where

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._where}: the pickle asks for {module}.{name}, which is not plain data (only numpy "
                "arrays, dtypes and built-in containers are read); refusing to run code from the file") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._where}: persistent ids are not supported")


def load_data_pickle(path: str | os.PathLike) -> Any:
    """Load a pickle of numpy arrays and containers; anything else raises UnsafePickleError."""
    where = os.fspath(path)
    with open(path, "rb") as f:
        try:
            return _RestrictedUnpickler(f, where).load()
        except UnsafePickleError as e:
            msg = str(e)
            raise UnsafePickleError(msg if msg.startswith(where) else f"{where}: {msg}") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
            raise ValueError(f"{where}: not a readable data pickle ({type(e).__name__}: {e})") from None
