"""Reading the benchmark pickles (MiniImageNet, FC100, tiered-ImageNet) without running their code.

These benchmarks are only distributed as pickles. A pickle is a small program: every global
it names is imported and may be called, and its BUILD instruction hands state to an object.
This unpickler:

* resolves only the names that numpy arrays, numpy scalars and dtypes, and plain containers
  need, from a fixed table (nothing is imported by name); anything else (`os.system`, a class
  from some package) stops the load with an error that names the file and the global;
* accepts only plain dtypes: numbers, booleans, bytes, text, dates; no object dtypes (their
  elements would be arbitrary Python objects), no structured or void dtypes (the benchmark
  files have none);
* lets BUILD give state only to numpy arrays (whose dtype and data are checked first) and to
  dtypes, and for a dtype only its byte order: a pickled dtype state can otherwise claim that
  its elements are Python objects, or change its item size after an array uses it, and numpy
  would then read the array's bytes as pointers or past their end;
* lets NEWOBJ build only the built-in containers of the table.

It is Python's own pickle machine (``pickle._Unpickler``) with those instructions guarded, as
the C unpickler offers no hook for BUILD. Python 2 pickles (the original files) load with
``encoding="latin1"``, which numpy documents for arrays pickled by Python 2.
"""
from __future__ import annotations

import _compat_pickle
import codecs
import collections
import os
import pickle
import struct
from typing import Any

import numpy as np
from numpy._core import multiarray as _multiarray
from numpy._core import numeric as _numeric


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle that asks for something other than plain arrays and containers."""


_PLAIN_KINDS = set("biufcSUMm")  # bool, ints, floats, complex, bytes, text, datetime, timedelta
# dtype flags that mean "the elements are (or point to) Python objects": NPY_ITEM_REFCOUNT,
# NPY_ITEM_LISTPICKLE, NPY_ITEM_IS_POINTER, NPY_NEEDS_PYAPI, NPY_USE_GETITEM, NPY_USE_SETITEM
_OBJECT_FLAGS = 0x01 | 0x02 | 0x04 | 0x10 | 0x20 | 0x40


def _object_dtype_error(dt: Any) -> UnsafePickleError:
    return UnsafePickleError(f"the pickle holds a numpy array of object dtype ({dt}): its elements would be "
                             "arbitrary Python objects, which this reader refuses (the benchmark files hold only "
                             "numeric and text arrays; is this the right file?)")


def _check_dtype(dt: Any) -> np.dtype:
    if not isinstance(dt, np.dtype):
        raise UnsafePickleError(f"expected a numpy dtype, got {type(dt).__name__}")
    if dt.hasobject:
        raise _object_dtype_error(dt)
    if dt.names is not None or dt.subdtype is not None or dt.kind not in _PLAIN_KINDS:
        raise UnsafePickleError(f"dtype {dt!r} is not a plain dtype (numbers, bytes, text); the benchmark files "
                                "use no structured or void dtypes")
    return dt


def _plain_dtype(obj: Any, align: Any = False, copy: Any = True) -> np.dtype:
    # Always a fresh dtype (copy=True): BUILD may then set its byte order without touching numpy's own.
    try:
        dt = np.dtype(obj, bool(align), True)
    except (TypeError, ValueError) as e:
        raise UnsafePickleError(f"numpy.dtype({obj!r}): {e}") from None
    return _check_dtype(dt)


def _ndarray(*args: Any, **kwargs: Any) -> np.ndarray:
    """What `numpy.ndarray` resolves to. numpy's pickles only pass it to _reconstruct, never call it."""
    dtype = args[1] if len(args) > 1 else kwargs.get("dtype", float)
    try:
        if np.dtype(dtype).hasobject:
            raise _object_dtype_error(np.dtype(dtype))
    except TypeError:
        pass
    raise UnsafePickleError("the pickle calls numpy.ndarray directly, which numpy's own pickles never do")


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    if subtype is not _ndarray:
        raise UnsafePickleError(f"array subclass {subtype!r} is not allowed")
    return _multiarray._reconstruct(np.ndarray, shape, dtype)


def _scalar(dtype: Any, *args: Any) -> Any:
    return _multiarray.scalar(_check_dtype(dtype), *args)


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    return _numeric._frombuffer(buf, _check_dtype(dtype), shape, order)


def _latin1_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    # Protocol 2 stores bytes as _codecs.encode(<str>, "latin1"); nothing else is needed.
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"_codecs.encode with {type(obj).__name__}, {encoding!r} is not allowed")
    return codecs.encode(obj, encoding, errors)


_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _ndarray,
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
# NEWOBJ may build these (complex pickles that way); their __new__ only makes an empty container.
_NEWOBJ_CLASSES = (collections.OrderedDict, set, frozenset, bytearray, complex)


def _check_array_state(state: Any) -> None:
    # ndarray.__reduce__ state: (version, shape, dtype, is_fortran, rawdata); older files omit version.
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        raise UnsafePickleError(f"unexpected numpy array state ({type(state).__name__} of "
                                f"{len(state) if isinstance(state, tuple) else '?'} items)")
    dtype, rawdata = state[-3], state[-1]
    _check_dtype(dtype)
    if not isinstance(rawdata, (bytes, bytearray, str)):
        raise UnsafePickleError(f"numpy array data given as {type(rawdata).__name__}, not bytes (object arrays "
                                "pickle their elements as a list)")


def _check_dtype_state(inst: np.dtype, state: Any) -> None:
    # dtype.__reduce__ state: (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])
    if not isinstance(state, tuple) or len(state) < 8:
        raise UnsafePickleError(f"unexpected dtype state for {inst!r} ({state!r:.80})")
    _version, order, subarray, names, fields, elsize, alignment, flags = state[:8]
    if flags != inst.flags and isinstance(flags, int) and flags & _OBJECT_FLAGS:
        raise UnsafePickleError(f"the pickle's dtype state for {inst!r} sets flags {flags:#x}, which would make "
                                "numpy treat its elements as Python objects; refusing")
    changes = []
    if order not in ("<", ">", "|", "="):
        changes.append(f"byte order {order!r}")
    if subarray is not None or names is not None or fields is not None:
        changes.append("a structured layout")
    if elsize not in (-1, inst.itemsize):
        changes.append(f"item size {elsize!r} (it has {inst.itemsize})")
    if alignment not in (-1, inst.alignment):
        changes.append(f"alignment {alignment!r} (it has {inst.alignment})")
    if flags != inst.flags:
        changes.append(f"flags {flags!r} (it has {inst.flags})")
    if changes:
        raise UnsafePickleError(f"the pickle's dtype state for {inst!r} changes its {', '.join(changes)}; only "
                                "the byte order may be set (numpy would read arrays of it as Python objects or "
                                "past their end); refusing")


class _RestrictedUnpickler(pickle._Unpickler):
    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, where: str):
        super().__init__(file, encoding="latin1")
        self._where = where

    def find_class(self, module: str, name: str) -> Any:
        if self.proto < 3 and (module, name) in _compat_pickle.NAME_MAPPING:  # Python 2 names
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif self.proto < 3:
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self._where}: the pickle asks for {module}.{name}, which is not plain data (only numpy "
                "arrays, dtypes and built-in containers are read); refusing to run code from the file") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._where}: persistent ids are not supported")

    def _guarded_build(self) -> None:
        state, inst = self.stack[-1], self.stack[-2]
        if type(inst) is np.ndarray:
            _check_array_state(state)
        elif isinstance(inst, np.dtype):
            _check_dtype_state(inst, state)
        else:
            what = getattr(inst, "__qualname__", None) or type(inst).__qualname__
            raise UnsafePickleError(f"the pickle sets state on {type(inst).__module__}.{what}, which only numpy "
                                    "arrays and dtypes may receive; refusing to change it")
        pickle._Unpickler.load_build(self)
        if isinstance(inst, np.dtype) and inst.hasobject:  # unreachable after the checks; kept as the last word
            raise _object_dtype_error(inst)

    def _guarded_newobj(self, depth: int) -> None:
        cls = self.stack[-depth]
        if cls not in _NEWOBJ_CLASSES:
            raise UnsafePickleError(f"the pickle builds an object of {cls!r} (NEWOBJ); only built-in containers "
                                    "may be built that way")

    def _load_newobj(self) -> None:
        self._guarded_newobj(2)  # stack: cls, args
        pickle._Unpickler.load_newobj(self)

    def _load_newobj_ex(self) -> None:
        self._guarded_newobj(3)  # stack: cls, args, kwargs
        pickle._Unpickler.load_newobj_ex(self)

    dispatch[pickle.BUILD[0]] = _guarded_build
    dispatch[pickle.NEWOBJ[0]] = _load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = _load_newobj_ex


def _check_loaded(obj: Any, depth: int = 0) -> None:
    """Last word: no object-dtype array anywhere in what was loaded."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise _object_dtype_error(obj.dtype)
    elif isinstance(obj, dict):
        for v in obj.values():
            _check_loaded(v, depth + 1)
    elif isinstance(obj, (list, tuple, set, frozenset)) and depth < 64:
        for v in obj:
            _check_loaded(v, depth + 1)


def load_data_pickle(path: str | os.PathLike) -> Any:
    """Load a pickle of numpy arrays and containers; anything else raises UnsafePickleError."""
    where = os.fspath(path)
    with open(path, "rb") as f:
        try:
            obj = _RestrictedUnpickler(f, where).load()
            _check_loaded(obj)
            return obj
        except UnsafePickleError as e:
            msg = str(e)
            raise UnsafePickleError(msg if msg.startswith(where) else f"{where}: {msg}") from None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError,
                struct.error, MemoryError, OverflowError) as e:
            raise ValueError(f"{where}: not a readable data pickle ({type(e).__name__}: {e})") from None
