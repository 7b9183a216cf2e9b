"""What a checkpoint's pickle may name, found without running it (docs/formats.md section 4).

A pickle is a small program: each global it names is imported and may be called. Checkpoints
are read by torch's restricted unpickler (``torch.load(weights_only=True)``), which resolves
only an allowlist of tensor-building globals and limits what the pickle may do with them
(which objects it may create, call, give state to or append to). This module decides which
extra names that loader may resolve, and reports, before anything is loaded, every global a
file asks for.

Admitted beyond torch's own list (:data:`ADMITTED_GLOBALS`, :data:`STAND_IN_PACKAGES`):

* ``argparse.Namespace``: an attribute bag; torch's loader creates it with ``object.__new__``
  and fills its ``__dict__`` with already-loaded plain values.
* ``pathlib`` path classes: resolved to the *pure* path classes, which only hold strings and
  never touch the file system (a ``WindowsPath`` saved on Windows loads on Linux too).
* Any class or function of the packages the published checkpoints were written with
  (ultimate-utils' ``uutils``, the seed study's ``diversity_src`` ...): resolved to an
  inert stand-in that records the dotted name and nothing else. The package is never
  imported. The files store such names as references (``'agent_type': type(args.agent)``);
  calling a stand-in, building an object from it or giving it state raises
  :class:`InertGlobalUsed`, so a file that would need the package's code is refused.

Why torch's allowlist (``torch.serialization.safe_globals``) rather than our own
``pickle_module``: torch's loader is a separate, maintained implementation that also restricts
BUILD, NEWOBJ, APPEND and SETITEM, blocks ``os``/``sys``/``posix``/``nt`` even when listed,
and knows every tensor rebuild function; a ``pickle.Unpickler.find_class`` gate would leave
those operations to the C unpickler and make us re-list torch's internals. The price: torch's
loader reads only the opcodes of pickle protocol 2 (torch.save's default), so files written
with a higher protocol need ``allow_pickle``; the message says so.

The stand-ins are registered under the exact names the scan found, for the duration of one
load, behind a lock (torch keeps that allowlist in a process-wide set).
"""
from __future__ import annotations

import _compat_pickle
import argparse
import copyreg
import os
import pathlib
import pickle
import pickletools
import threading
import zipfile
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterable

# ---------------------------------------------------------------------------- the admitted list

# Packages whose classes and functions become inert stand-ins (never imported, never called).
# They are the code bases the published checkpoints were saved from:
#   uutils         ultimate-utils (brando90/ultimate-utils): save_for_meta_learning stores
#                  'agent_type': type(args.agent), e.g. uutils.torch_uu.meta_learners.maml_meta_learner.MAMLMetaLearner
#   diversity_src  the seed study (brando90/diversity-for-predictive-success-of-meta-learning)
#   synthetic_src  the same repository's synthetic experiments
#   meta_learning  the authors' earlier meta-learning code base, whose agents the seeds reuse
STAND_IN_PACKAGES: tuple[str, ...] = ("uutils", "diversity_src", "synthetic_src", "meta_learning")

# Inert classes admitted by exact dotted name -> what the name resolves to.
ADMITTED_GLOBALS: dict[str, Any] = {"argparse.Namespace": argparse.Namespace}
for _mod in ("pathlib", "pathlib._local"):  # Python <= 3.12 and >= 3.13 spellings
    ADMITTED_GLOBALS.update({
        f"{_mod}.PurePath": pathlib.PurePath,
        f"{_mod}.PurePosixPath": pathlib.PurePosixPath,
        f"{_mod}.PureWindowsPath": pathlib.PureWindowsPath,
        f"{_mod}.Path": pathlib.PurePath,
        f"{_mod}.PosixPath": pathlib.PurePosixPath,
        f"{_mod}.WindowsPath": pathlib.PureWindowsPath,
    })

# Globals worth a word in a refusal: what calling them would do.
_WHAT_IT_DOES = {
    "system": "runs a shell command", "popen": "runs a shell command", "eval": "evaluates Python code",
    "exec": "runs Python code", "compile": "compiles Python code", "__import__": "imports a module",
    "getattr": "reaches any attribute", "open": "opens a file", "remove": "deletes a file",
    "unlink": "deletes a file", "rmtree": "deletes a folder", "execv": "replaces the process",
    "Popen": "starts a process", "run": "starts a process", "call": "starts a process",
    "check_output": "starts a process", "check_call": "starts a process", "apply": "calls any function",
}


_WHAT_THIS_ONE_DOES = {
    "torch.storage._load_from_bytes": "runs an unrestricted torch.load on bytes inside the pickle",
    "torch.load": "runs an unrestricted torch.load",
}


def what_it_does(name: str) -> str:
    """' (runs a shell command)' for the globals we can describe, '' otherwise."""
    if name in _WHAT_THIS_ONE_DOES:
        return f" ({_WHAT_THIS_ONE_DOES[name]})"
    module, _, attr = name.rpartition(".")
    if module.split(".")[0] in ("os", "posix", "nt", "builtins", "subprocess", "shutil", "pty", "operator",
                                "functools", "runpy", "importlib", "code", "pdb", "webbrowser", "sys"):
        what = _WHAT_IT_DOES.get(attr)
        if what:
            return f" ({what})"
    return ""


class InertGlobalUsed(Exception):
    """A pickle tried to call, build or give state to a stand-in; nothing was run.

    Not a pickle.UnpicklingError on purpose: torch rewraps those into its own long message."""

    def __init__(self, global_name: str, action: str):
        super().__init__(f"{global_name}: {action} (it is an inert stand-in; the package's code is never run)")
        self.global_name = global_name
        self.action = action


class _InertMeta(type):
    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise InertGlobalUsed(cls.global_name, "called")

    def __repr__(cls) -> str:
        return f"<inert stand-in for {cls.global_name}>"


class StandIn(metaclass=_InertMeta):
    """Base of the stand-ins: a name and nothing else."""

    global_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any):  # NEWOBJ calls cls.__new__ directly
        raise InertGlobalUsed(cls.global_name, "an object of it was built")

    def __setstate__(self, state: Any) -> None:
        raise InertGlobalUsed(type(self).global_name, "state was set on it")

    def __reduce__(self):
        raise InertGlobalUsed(type(self).global_name, "pickled")


_STAND_INS: dict[str, type] = {}
_RECORDERS: dict[str, type] = {}


def _is_stand_in_module(module: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in STAND_IN_PACKAGES)


def stand_in(module: str, name: str) -> type:
    """The inert stand-in for `module.name` (one per name)."""
    dotted = f"{module}.{name}"
    cls = _STAND_INS.get(dotted)
    if cls is None:
        cls = _InertMeta(name.rpartition(".")[2] or "StandIn", (StandIn,),
                         {"global_name": dotted, "__module__": __name__, "__qualname__": f"StandIn[{dotted}]"})
        _STAND_INS[dotted] = cls
    return cls


def stand_in_name(obj: Any) -> str | None:
    """The dotted name a stand-in (or a recorder) stands for, else None."""
    if isinstance(obj, (_InertMeta, _RecorderMeta)):
        return obj.global_name
    return None


# Under allow_pickle (a trusted file) an object of a stand-in class is kept as a record of the
# arguments and state the pickle gave it; the package is still never imported.
class InertRecord:
    """What a trusted pickle built from a class of a stand-in package: its name, arguments, state."""

    def __init__(self, global_name: str, args: tuple = (), kwargs: dict | None = None):
        self.global_name, self.args, self.kwargs, self.state = global_name, args, dict(kwargs or {}), None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def as_dict(self) -> dict:
        out: dict[str, Any] = {"global": self.global_name}
        if self.args:
            out["args"] = list(self.args)
        if self.kwargs:
            out["kwargs"] = self.kwargs
        if self.state is not None:
            out["state"] = self.state
        return out

    def __repr__(self) -> str:
        return f"<record of a {self.global_name} object>"


class _RecorderMeta(type):
    def __call__(cls, *args: Any, **kwargs: Any) -> InertRecord:
        return InertRecord(cls.global_name, args, kwargs)

    def __repr__(cls) -> str:
        return f"<recorder for {cls.global_name}>"


def _recorder(module: str, name: str) -> type:
    dotted = f"{module}.{name}"
    cls = _RECORDERS.get(dotted)
    if cls is None:
        def __new__(c, *args, **kwargs):  # NEWOBJ: cls.__new__(cls, *args)
            return InertRecord(dotted, args, kwargs)
        cls = _RecorderMeta(name.rpartition(".")[2] or "Recorder", (),
                            {"global_name": dotted, "__new__": __new__, "__module__": __name__,
                             "__qualname__": f"Recorder[{dotted}]", "__setstate__": InertRecord.__setstate__})
        _RECORDERS[dotted] = cls
    return cls


# ---------------------------------------------------------------------------------- the scan

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # the first pickle of torch's pre-1.6 (non-zip) format


class NotACheckpoint(ValueError):
    """The file is not something torch.load reads; the message says what it looks like."""


@dataclass
class PickleScan:
    """What a checkpoint file is and which globals its pickles name, found without unpickling."""

    kind: str                 # "torch zip", "legacy format", "plain pickle", "TorchScript archive"
    protocol: int             # the highest protocol its pickles declare
    globals: list[str] = field(default_factory=list)  # "module.name", each once, in file order
    unresolved: int = 0       # STACK_GLOBALs whose names are computed at load time


class _Bounded:
    """A reader that never asks for more than what is left (a forged length cannot allocate)."""

    def __init__(self, f: BinaryIO, size: int):
        self._f, self._left = f, size

    def read(self, n: int = -1) -> bytes:
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._f.read(n)
        self._left -= len(data)
        return data

    def readline(self) -> bytes:
        line = self._f.readline(self._left)
        self._left -= len(line)
        return line


_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING", "SHORT_BINSTRING"}


def _map_py2(module: str, name: str) -> tuple[str, str]:
    """Python 2 names as Python 3's unpickler (and torch's) reads them."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _scan_one(f: Any, found: dict[str, None], scan: PickleScan) -> list:
    """Walk one pickle's opcodes (up to its STOP) and add the globals it names. Returns [value] when the
    pickle is a single number or string (to recognise torch's legacy magic number), else []."""
    memo: dict[Any, Any] = {}
    recent: list[Any] = []  # values of the latest pushes, enough to resolve STACK_GLOBAL
    values: list = []  # the args of the value opcodes, while there are few
    for op, arg, _pos in pickletools.genops(f):
        name = op.name
        if name not in ("PROTO", "FRAME", "STOP", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT") and len(values) < 2:
            values.append(arg)
        if name == "PROTO":
            scan.protocol = max(scan.protocol, int(arg))
            continue
        if name in ("GLOBAL", "INST"):
            module, _, attr = str(arg).partition(" ")
            if scan.protocol < 3:
                module, attr = _map_py2(module, attr)
            found.setdefault(f"{module}.{attr}", None)
            recent.append(None)
        elif name == "STACK_GLOBAL":
            module, attr = (recent[-2], recent[-1]) if len(recent) >= 2 else (None, None)
            if isinstance(module, str) and isinstance(attr, str):
                found.setdefault(f"{module}.{attr}", None)
            else:
                scan.unresolved += 1
            recent.append(None)
        elif name in ("EXT1", "EXT2", "EXT4"):
            key = copyreg._inverted_registry.get(arg)  # what copyreg's extension registry would resolve
            found.setdefault(f"{key[0]}.{key[1]}" if key else f"<copyreg extension code {arg}>", None)
            recent.append(None)
        elif name in _STRINGS:
            recent.append(arg)
        elif name == "MEMOIZE":
            memo[len(memo)] = recent[-1] if recent else None
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = recent[-1] if recent else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            recent.append(memo.get(arg))
        elif name != "FRAME":
            recent.append(None)
        del recent[:-4]
    return values if len(values) == 1 else []


def _describe(head: bytes, size: int) -> str:
    """What a file that is neither a zip archive nor a pickle looks like."""
    if size == 0:
        return "the file is empty (0 bytes)"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    low = text[:512].lower()
    if low.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or b"<html" in low:
        title = ""
        if b"<title>" in low:
            start = low.index(b"<title>") + 7
            title = text[start:start + 80].split(b"<")[0].decode("utf-8", "replace").strip()
        return (f"an HTML page{f' titled {title!r}' if title else ''} ({size:,} bytes): the server sent a web page "
                "(an error or sign-in page?) instead of the file")
    if head.startswith(b"\x1f\x8b"):
        return f"gzip-compressed data ({size:,} bytes): a .gz/.tgz archive, not a checkpoint; unpack it first"
    if head[257:262] == b"ustar":
        return f"a tar archive ({size:,} bytes): unpack it first"
    if head.startswith(b"\x93NUMPY"):
        return f"a NumPy .npy array file ({size:,} bytes)"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return f"an HDF5 file ({size:,} bytes; Keras/TensorFlow weights?)"
    try:
        snippet = head[:60].decode("utf-8")
    except UnicodeDecodeError:
        snippet = None
    if snippet is not None and all(c.isprintable() or c in "\t\r\n" for c in snippet):
        return (f"a text file, starting {snippet.strip()[:40]!r} ({size:,} bytes; an error message sent instead "
                "of the file?)")
    return (f"unrecognised binary data ({size:,} bytes, starting {head[:8].hex(' ')}): neither a zip archive "
            "(torch.save's format) nor a pickle")


def _pickle_error(e: Exception) -> str:
    if isinstance(e, ValueError) and ("exhausted" in str(e) or "remain" in str(e) or "EOF" in str(e)):
        return "a pickle that ends before its end (truncated?)"
    return f"a damaged pickle ({e})"


def scan_checkpoint(path: str | os.PathLike) -> PickleScan:
    """Which globals a checkpoint file would make an unpickler resolve, without unpickling it.

    Reads torch's zip format (``<archive>/data.pkl``), torch's legacy format (a run of pickles:
    magic number, protocol, system info, the object, storage keys) and plain pickles. Raises
    :class:`NotACheckpoint` with a description for anything else.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(1024)
        f.seek(0)
        if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
            return _scan_zip(f, size)
        # torch.save and pickle.dump write protocol 2 or higher, which starts with PROTO
        if not (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5):
            raise NotACheckpoint(_describe(head, size))
        return _scan_pickles(_Bounded(f, size), size)


def _scan_pickles(f: _Bounded, size: int) -> PickleScan:
    scan = PickleScan("plain pickle", 0)
    found: dict[str, None] = {}
    try:
        first = _scan_one(f, found, scan)
        if TORCH_LEGACY_MAGIC in first:
            scan.kind = "legacy format"
            for _ in range(4):  # protocol version, system info, the object, the storage keys
                _scan_one(f, found, scan)
    except Exception as e:  # noqa: BLE001 - genops raises ValueError on bad or missing bytes
        raise NotACheckpoint(_pickle_error(e)) from None
    scan.globals = list(found)
    return scan


def _scan_zip(f: BinaryIO, size: int) -> PickleScan:
    try:
        zf = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise NotACheckpoint(f"a truncated or damaged zip archive ({size:,} bytes; {e}): torch checkpoints are "
                             "zip archives, and this one is incomplete (a download cut short?)") from None
    with zf:
        names = zf.namelist()
        pkls = [n for n in names if n == "data.pkl" or (n.endswith("/data.pkl") and n.count("/") == 1)]
        if not pkls:
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            raise NotACheckpoint(f"a zip archive without data.pkl (members: {shown or 'none'})")
        prefix = pkls[0][: -len("data.pkl")]
        kind = "TorchScript archive" if f"{prefix}constants.pkl" in names else "torch zip"
        scan = PickleScan(kind, 0)
        found: dict[str, None] = {}
        try:
            with zf.open(pkls[0]) as member:
                _scan_one(_Bounded(member, zf.getinfo(pkls[0]).file_size), found, scan)
        except NotACheckpoint:
            raise
        except Exception as e:  # noqa: BLE001
            raise NotACheckpoint(f"a zip archive whose {pkls[0]} is {_pickle_error(e)}") from None
    scan.globals = list(found)
    return scan


# ------------------------------------------------------------------------------ classification

_TORCH_FALLBACK = {"collections.OrderedDict", "collections.Counter", "_codecs.encode", "builtins.set",
                   "builtins.bytearray", "builtins.complex"}


def _torch_default_globals() -> set[str]:
    """The names torch's restricted loader resolves by default (what torch's own
    get_unsafe_globals_in_checkpoint compares against). Should that private table move, every
    torch.* name counts as torch's: the scan only words the message, torch's loader still decides."""
    try:
        from torch import _weights_only_unpickler

        return set(_weights_only_unpickler._get_allowed_globals())
    except (ImportError, AttributeError):  # pragma: no cover - a future torch
        return _TORCH_FALLBACK


def _torch_or_fallback(name: str, torch_names: set[str]) -> bool:
    return name in torch_names or (torch_names is _TORCH_FALLBACK and name.startswith("torch."))


def is_admitted(name: str, torch_names: set[str] | None = None) -> bool:
    """Whether `name` may be resolved by the default (restricted) load."""
    torch_names = _torch_default_globals() if torch_names is None else torch_names
    module = name.rpartition(".")[0]
    return name in ADMITTED_GLOBALS or _is_stand_in_module(module) or _torch_or_fallback(name, torch_names)


def refused_globals(names: Iterable[str]) -> list[str]:
    """The names among `names` that neither torch nor :data:`ADMITTED_GLOBALS`/stand-ins admit."""
    torch_names = _torch_default_globals()
    return [n for n in names if not is_admitted(n, torch_names)]


def weights_only_allowlist(names: Iterable[str]) -> list[tuple[Any, str]]:
    """(object, dotted name) pairs for torch.serialization.safe_globals: our admitted names among `names`."""
    out = []
    for n in names:
        module, _, attr = n.rpartition(".")
        if n in ADMITTED_GLOBALS:
            out.append((ADMITTED_GLOBALS[n], n))
        elif _is_stand_in_module(module):
            out.append((stand_in(module, attr), n))
    return out


# torch keeps its allowlist in one process-wide set: one restricted load at a time.
WEIGHTS_ONLY_LOCK = threading.Lock()


# ------------------------------------------------------------------ the trusted (allow_pickle) load

class TrustingUnpickler(pickle.Unpickler):
    """Python's unpickler (it runs the file's pickle: only for files the sheet trusts), except that
    stand-in packages are never imported (their objects become :class:`InertRecord`) and paths load
    as pure paths, as in the restricted load."""

    def find_class(self, module: str, name: str) -> Any:
        dotted = f"{module}.{name}"
        if _is_stand_in_module(module):
            return _recorder(module, name)
        if dotted in ADMITTED_GLOBALS:
            return ADMITTED_GLOBALS[dotted]
        return super().find_class(module, name)


class _TrustingPickleModule:
    """What torch.load(pickle_module=...) needs: Unpickler, load, __name__."""

    __name__ = "divcoeff.unpickling.trusting"
    Unpickler = TrustingUnpickler
    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(file: BinaryIO, **kwargs: Any) -> Any:
        return TrustingUnpickler(file, **kwargs).load()


TRUSTING_PICKLE_MODULE = _TrustingPickleModule()


def load_plain_pickle_trusting(path: str | os.PathLike) -> Any:
    """A plain pickle (pickle.dump), trusted: only for files whose sheet row sets allow_pickle."""
    with open(path, "rb") as f:
        return TrustingUnpickler(f).load()
