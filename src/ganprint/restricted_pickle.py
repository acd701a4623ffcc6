"""Reading data pickles (dicts of numbers, strings, lists and numpy arrays) without executing them.

Some public data sets (CIFAR-10's "python version") are distributed as pickles. Plain unpickling
runs whatever callables a file names, so a doctored file could run code. `load_data_pickle`
instead walks the opcode stream with `pickletools.genops` (a parser that only decodes) and
interprets a small subset itself:

* plain data: None, booleans, integers, floats, bytes, str, tuples, lists, dicts; the memo;
* exactly three named callables, never imported, whose effect is computed here:
  `_codecs.encode(text, "latin1")` (how Python 3 writes bytes at protocol <= 2),
  `numpy.dtype(spec, align, copy)` for numeric dtypes, and
  `numpy[._]core.multiarray._reconstruct(numpy.ndarray, (0,), b"b")` followed by BUILD with
  `(version, shape, dtype, fortran_order, raw_bytes)`: the standard pickle of a numeric ndarray
  (and at protocol 5 `numpy[._]core.numeric._frombuffer(raw_bytes, dtype, shape, order)`).

Any other global, class instantiation (NEWOBJ, INST, OBJ), persistent id or extension code is
refused with a GanprintError naming what the file asked for. Strings that Python 2 wrote (STRING,
BINSTRING) are returned as bytes, like `pickle.load(..., encoding="bytes")`.
"""

from __future__ import annotations

import io
import pickletools

import numpy as np

from .errors import GanprintError

_ENCODE = ("_codecs", "encode")
_DTYPE = ("numpy", "dtype")
_NDARRAY = ("numpy", "ndarray")
_RECONSTRUCT = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}
_FROMBUFFER = {("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}  # protocol 5
_ALLOWED_GLOBALS = {_ENCODE, _DTYPE, _NDARRAY, *_RECONSTRUCT, *_FROMBUFFER}

# Opcodes whose argument is pushed as is (text and numbers).
_PUSH_ARG = {
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
    "UNICODE", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8",
}  # fmt: skip
_PUSH_BYTES = {"BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"}
_PY2_STRINGS = {"STRING", "BINSTRING", "SHORT_BINSTRING"}  # genops decodes them as latin-1 text
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_IGNORED = {"PROTO", "FRAME"}


class _Global:
    """A callable named by the pickle; only a name, never resolved."""

    def __init__(self, module: str, name: str):
        self.key = (module, name)


class _Dtype:
    def __init__(self, spec: str):
        try:
            self.dtype = np.dtype(spec)  # a string spec only: np.dtype never runs user code here
        except TypeError:
            raise ValueError(f"unknown dtype {spec!r}") from None
        if self.dtype.kind not in "biuf":
            raise _Refused(f"a non-numeric dtype {spec!r} (only numeric arrays are read)")


class _ArrayStub:
    """An ndarray being rebuilt: created by _reconstruct, filled by BUILD."""

    array: np.ndarray | None = None


class _Refused(Exception):
    pass


def _text(value) -> str | None:
    """Text that Python 2 may have written as a byte string."""
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    return value if isinstance(value, str) else None


def _materialize(obj):
    if isinstance(obj, _ArrayStub):
        if obj.array is None:
            raise _Refused("an ndarray without data")
        return obj.array
    if isinstance(obj, (_Global, _Dtype)):
        raise _Refused("a bare callable or dtype")
    if isinstance(obj, dict):
        return {_materialize(k): _materialize(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_materialize(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_materialize(v) for v in obj)
    return obj


def _reduce(func, args):
    if not isinstance(func, _Global) or not isinstance(args, tuple):
        raise _Refused("a call of something that is not an allowed callable")
    if func.key == _ENCODE:
        if len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1"):
            return args[0].encode("latin-1")
        raise _Refused("_codecs.encode with unexpected arguments")
    if func.key == _DTYPE:
        if 1 <= len(args) <= 3 and isinstance(args[0], (str, bytes)):
            return _Dtype(_text(args[0]))
        raise _Refused("numpy.dtype with unexpected arguments")
    if func.key in _FROMBUFFER:
        if len(args) == 4 and args[3] in ("C", "F"):
            stub = _ArrayStub()
            stub.array = _array(args[1], args[2], args[3] == "F", args[0])
            return stub
        raise _Refused("_frombuffer with unexpected arguments")
    if func.key in _RECONSTRUCT:
        if len(args) == 3 and isinstance(args[0], _Global) and args[0].key == _NDARRAY:
            return _ArrayStub()
        raise _Refused("_reconstruct of something other than numpy.ndarray")
    raise _Refused(f"a call of {'.'.join(func.key)}")


def _array(dtype, shape, fortran: bool, raw) -> np.ndarray:
    if not (isinstance(shape, tuple) and all(isinstance(s, int) and s >= 0 for s in shape)):
        raise _Refused("an ndarray with a bad shape")
    if not isinstance(dtype, _Dtype) or not isinstance(raw, (bytes, bytearray)):
        raise _Refused("an ndarray of objects (only numeric arrays are read)")
    count = int(np.prod(shape, dtype=np.int64))
    if len(raw) != count * dtype.dtype.itemsize:
        raise _Refused(f"an ndarray whose data ({len(raw)} bytes) does not fit its shape {shape}")
    flat = np.frombuffer(bytes(raw), dtype=dtype.dtype)
    return flat.reshape(shape, order="F" if fortran else "C")


def _build(obj, state) -> None:
    if isinstance(obj, _Dtype):
        # (version, byte order, subarray, names, fields, elsize, alignment, flags): the byte order
        # is the only part that matters for numeric dtypes.
        order = _text(state[1]) if isinstance(state, tuple) and len(state) >= 2 else None
        if order in ("<", ">", "|", "="):
            if order in "<>":
                obj.dtype = obj.dtype.newbyteorder(order)
            return
        raise _Refused("an unexpected dtype state")
    if isinstance(obj, _ArrayStub):
        if not (isinstance(state, tuple) and len(state) == 5):
            raise _Refused("an unexpected ndarray state")
        _, shape, dtype, fortran, raw = state
        obj.array = _array(dtype, shape, bool(fortran), raw)
        return
    raise _Refused("state set on an object (BUILD)")


def load_data_pickle(data: bytes, name: str):
    """The object in pickle bytes `data`, built without executing anything (see module docstring).

    `name` labels errors. Raises GanprintError for a refused or corrupt pickle.
    """
    stack: list = []
    marks: list[int] = []
    memo: dict = {}

    def pop_mark() -> list:
        if not marks:
            raise _Refused("a MARK that was never set")
        start = marks.pop()
        items = stack[start:]
        del stack[start:]
        return items

    try:
        for op, arg, _pos in pickletools.genops(io.BytesIO(data)):
            code = op.name
            if code in _IGNORED:
                continue
            if code in _PUSH_ARG:
                stack.append(arg)
            elif code in _PUSH_BYTES:
                stack.append(bytes(arg))
            elif code in _PY2_STRINGS:
                stack.append(arg.encode("latin-1"))
            elif code in _CONSTANTS:
                stack.append(_CONSTANTS[code])
            elif code == "MARK":
                marks.append(len(stack))
            elif code == "STOP":
                if len(stack) != 1 or marks:
                    raise _Refused("a malformed stream (stack not empty at STOP)")
                return _materialize(stack.pop())
            elif code == "EMPTY_DICT":
                stack.append({})
            elif code == "EMPTY_LIST":
                stack.append([])
            elif code == "EMPTY_TUPLE":
                stack.append(())
            elif code in ("TUPLE1", "TUPLE2", "TUPLE3"):
                k = int(code[-1])
                items = tuple(stack[-k:])
                del stack[-k:]
                if len(items) != k:
                    raise _Refused("a tuple of missing items")
                stack.append(items)
            elif code == "TUPLE":
                stack.append(tuple(pop_mark()))
            elif code == "LIST":
                stack.append(pop_mark())
            elif code == "DICT":
                items = pop_mark()
                stack.append(dict(zip(items[::2], items[1::2])))
            elif code == "APPEND":
                value = stack.pop()
                stack[-1].append(value)
            elif code == "APPENDS":
                items = pop_mark()
                stack[-1].extend(items)
            elif code == "SETITEM":
                value, key = stack.pop(), stack.pop()
                stack[-1][key] = value
            elif code == "SETITEMS":
                items = pop_mark()
                stack[-1].update(zip(items[::2], items[1::2]))
            elif code in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = stack[-1]
            elif code == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif code in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo[arg])
            elif code == "POP":
                stack.pop()
            elif code == "POP_MARK":
                pop_mark()
            elif code == "DUP":
                stack.append(stack[-1])
            elif code in ("GLOBAL", "STACK_GLOBAL"):
                if code == "GLOBAL":
                    module, _, attr = arg.partition(" ")
                else:
                    attr, module = stack.pop(), stack.pop()
                    if not (isinstance(module, str) and isinstance(attr, str)):
                        raise _Refused("a global with a non-text name")
                if (module, attr) not in _ALLOWED_GLOBALS:
                    raise _Refused(f"the global {module}.{attr}")
                stack.append(_Global(module, attr))
            elif code == "REDUCE":
                args = stack.pop()
                stack.append(_reduce(stack.pop(), args))
            elif code == "BUILD":
                state = stack.pop()
                _build(stack[-1], state)
            else:  # NEWOBJ, INST, OBJ, PERSID, EXT*, sets, ...: nothing a data file needs
                raise _Refused(f"the opcode {code}")
    except _Refused as e:
        raise GanprintError(f"{name}: refusing to load this pickle: it contains {e}") from None
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, OverflowError, UnicodeError,
            RecursionError, MemoryError) as e:
        detail = " ".join(str(e).split()) or type(e).__name__
        raise GanprintError(f"{name}: corrupt or unsupported pickle ({detail})") from None
    raise GanprintError(f"{name}: truncated pickle (no STOP opcode)")
