"""Structure-aware corruption of venue frames, for fuzzing clients.

:class:`Mutator` turns one frame (JSON text, or JSON compressed the way the venue compresses it)
into a corrupt one: truncated, bytes flipped, values of the wrong type, keys missing or added,
numbers that are not numbers (``NaN``, ``-1``, ``1,5``, ``""``), levels of the wrong shape,
sequence fields set to nonsense, nesting tens of thousands deep, frames megabytes long, duplicate
keys, invalid UTF-8, wrong or broken compression, or nothing at all. JSON is parsed once and
changed along one random path (the rest of the tree is shared, not copied).

``detectable=True`` keeps to corruptions a protocol-abiding client can tell from a real frame
(no digit changed into another digit, no value swapped for a plausible one): what the
``garble`` fault uses, so that a client book that differs from the venue's truth after garbled
frames is the client's fault. The fuzzing bench (``bench/fuzz.py``) uses every operation.

Only the standard library: the simulator shares no code with the client.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import zlib
from typing import Any, Callable

__all__ = ["Mutator", "OPS", "DETECTABLE_OPS"]

_NUM_BAD_DETECTABLE = ["NaN", "nan", "-1", "-0.5", "inf", "Infinity", "-Infinity", "1,5", "", " 1", "0x1F", "1.2.3",
                       "abc", "1e", "--1", "+-0", "١٢٣", "\u0000"]
_NUM_BAD = _NUM_BAD_DETECTABLE + ["1e400", "0E-8", "-0", "00001", "1e-400", "9" * 400]
_TYPE_BAD = [None, True, False, -1, -0.5, 0, 1.5, 2**70, -2**70, 1e308, "", "abc", "1,5", "NaN", "-1", [], {}, [[]],
             {"a": 1}, [None], ["1"], [1, 2], "0E-8"]
# for detectable corruption: values no venue sends where any field is expected to hold data
_TYPE_BAD_DETECTABLE = [None, True, False, -1, -0.5, "", "abc", "1,5", "NaN", "-1", "1.2.3", [], {}, [[]], {"a": 1},
                        [None]]
_LEVEL_BAD = [[], ["1"], [1, 2], ["1", "2", "3", "4", "5", "6", "7"], "1:2", {"p": "1", "s": "2"}, [None, None],
              [["1", "2"]], ["", ""], ["NaN", "1"], ["1", "-1"], [True, False]]
_LEVEL_BAD_DETECTABLE = [[], ["1"], "1:2", {"p": "1", "s": "2"}, [None, None], [["1", "2"]], ["", ""], ["NaN", "1"],
                         ["1", "-1"], [True, False], ["abc", "1"]]
_SEQ_KEYS = ("u", "seq", "seqId", "prevSeqId", "seq_id", "ts", "cts", "T", "id", "checksum", "connCount", "code")
_SEQ_BAD = [-1, 0, None, "x", "", 2**64, -2**63, 1.5, [], {}, "NaN"]
_EMPTY = [b"", b"{}", b"[]", b"null", b"0", b'""', b"{", b"}", b" ", b"\x00", b"\xff\xfe", b"pong", b"ping"]

OPS = ("truncate", "bytes", "garbage", "type", "number", "drop", "add", "level", "seq", "nest", "huge", "dupkey",
       "compress", "splice", "empty", "unicode")
DETECTABLE_OPS = ("truncate", "garbage", "type", "number", "drop", "level", "nest", "dupkey", "compress", "empty",
                  "unicode")
# How often each operation is chosen (the expensive ones rarely).
_WEIGHTS = {"truncate": 10, "bytes": 8, "garbage": 5, "type": 16, "number": 14, "drop": 10, "add": 4, "level": 10,
            "seq": 8, "nest": 2, "huge": 1, "dupkey": 3, "compress": 4, "splice": 3, "empty": 2, "unicode": 3}

_Container = (dict, list)


def _inflate(data: bytes) -> tuple[bytes, str] | None:
    for kind, wbits in (("gzip", 31), ("zlib", 15), ("deflate", -15)):
        try:
            return zlib.decompress(data, wbits), kind
        except zlib.error:
            continue
    return None


def _compress(data: bytes, kind: str) -> bytes:
    if kind == "gzip":
        return gzip.compress(data, compresslevel=1, mtime=0)
    if kind == "zlib":
        return zlib.compress(data, 1)
    c = zlib.compressobj(1, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


class Mutator:
    """Corrupts frames at random (``rng`` decides everything: the same seed, the same frames).

    :meth:`mutate` returns ``(payload, binary, op)``. ``ops`` restricts the operations;
    ``detectable`` keeps to corruption a client can recognise (see the module docstring);
    ``max_bytes`` caps what a "huge" frame grows to."""

    def __init__(self, rng: random.Random | None = None, ops: tuple[str, ...] | None = None,
                 detectable: bool = False, max_bytes: int = 1 << 20) -> None:
        self.rng = rng or random.Random(0)
        self.detectable = detectable
        ops = ops or (DETECTABLE_OPS if detectable else OPS)
        self.ops = [o for o in ops if o in _WEIGHTS]
        self.weights = [_WEIGHTS[o] for o in self.ops]
        self.max_bytes = max_bytes
        self.type_bad = _TYPE_BAD_DETECTABLE if detectable else _TYPE_BAD
        self.level_bad = _LEVEL_BAD_DETECTABLE if detectable else _LEVEL_BAD
        self._cache: dict[bytes, Any] = {}

    # -- parsing ------------------------------------------------------------------------------

    def _parse(self, text: bytes) -> Any:
        """The JSON value of ``text`` (cached for the last few hundred frames), or a sentinel."""
        v = self._cache.get(text, _MISSING)
        if v is _MISSING:
            try:
                v = json.loads(text)
            except (ValueError, UnicodeDecodeError, RecursionError):
                v = _NOT_JSON
            if len(self._cache) > 512:
                self._cache.clear()
            self._cache[text] = v
        return v

    # -- the one entry point ------------------------------------------------------------------

    def mutate(self, payload: bytes, binary: bool = False) -> tuple[bytes, bool, str]:
        rng = self.rng
        op = rng.choices(self.ops, self.weights)[0]
        raw = bytes(payload)
        compression = None
        text = raw
        if binary or raw[:2] == b"\x1f\x8b":
            inflated = _inflate(raw)
            if inflated is not None:
                text, compression = inflated
        elif raw[:4] == b"H4sI":  # gzip as base64 text
            try:
                inflated = _inflate(base64.b64decode(raw))
            except ValueError:
                inflated = None
            if inflated is not None:
                text, compression = inflated[0], "b64gzip"
        out, out_binary = self._apply(op, text, binary)
        if compression is not None and op != "compress":
            if compression == "b64gzip":
                out = base64.b64encode(_compress(out, "gzip"))
            else:
                out = _compress(out, compression)
                out_binary = True
        return out, out_binary, op

    def _apply(self, op: str, text: bytes, binary: bool) -> tuple[bytes, bool]:
        rng = self.rng
        if op == "truncate":
            return text[:rng.randrange(len(text))] if text else b"", binary
        if op == "bytes":
            b = bytearray(text or b"{}")
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            return bytes(b), binary
        if op == "garbage":
            b = bytearray(text)
            junk = bytes(rng.choice((0x00, 0x7B, 0x7D, 0x5B, 0x5D, 0x22, 0x2C, 0x3A, 0xFF, 0xC3, 0x5C))
                         for _ in range(rng.randint(1, 6)))
            i = rng.randrange(len(b) + 1)
            return bytes(b[:i]) + junk + bytes(b[i:]), binary
        if op == "empty":
            return rng.choice(_EMPTY), binary
        if op == "unicode":
            b = bytearray(text)
            i = rng.randrange(len(b) + 1)
            bad = rng.choice((b"\xed\xa0\x80", b"\xc0\xaf", b"\\ud800", b"\\u0000", b"\xf0\x28\x8c\x28", b"\\uDFFF\\u"))
            return bytes(b[:i]) + bad + bytes(b[i:]), binary
        if op == "compress":
            kind = rng.choice(("gzip", "zlib", "deflate", "b64", "flag", "broken", "bomb"))
            if kind in ("gzip", "zlib", "deflate"):
                return _compress(text, kind), rng.random() < 0.8
            if kind == "b64":
                return base64.b64encode(_compress(text, "gzip")), False
            if kind == "flag":
                return text, not binary
            if kind == "broken":
                z = _compress(text, rng.choice(("gzip", "zlib", "deflate")))
                return z[: max(1, len(z) - rng.randint(1, 12))] + bytes(rng.randrange(256) for _ in range(3)), True
            # many MB of zeros in a few KB (a client must cap what it inflates)
            return _compress(b'{"x":"' + b"0" * (rng.randint(1, 8) << 20) + b'"}', "gzip"), True
        if op == "splice":
            i = rng.randrange(len(text) + 1)
            tail = rng.choice((b'"}', b"]]}", b',"x":[1,2]}', b"}}}}", b"[[[[", b'":"', text[:i]))
            return text[:i] + tail, binary
        if op == "dupkey":
            i = text.find(b"{")
            if i < 0:
                return text + b"{", binary
            dup = rng.choice((b'"data":null,', b'"type":"snapshot",', b'"u":1,', b'"arg":{},', b'"b":[],',
                              b'"topic":1,', b'"action":"snapshot",', b'"event":"error",'))
            return text[: i + 1] + dup + text[i + 1:], binary
        if op == "nest":
            depth = rng.choice((64, 512, 2048, 20000, 100000))
            obj = self._parse(text)
            if obj is _NOT_JSON:
                return b"[" * depth + b"]" * depth, binary
            opener, closer = (b"[", b"]") if rng.random() < 0.5 else (b'{"a":', b"}")
            inner = json.dumps(self._pick_leafish(obj), separators=(",", ":")).encode()
            nested = opener * depth + inner + closer * depth
            return self._replace_text(obj, nested), binary
        obj = self._parse(text)
        if obj is _NOT_JSON or not isinstance(obj, _Container):
            return self._apply("truncate" if text else "empty", text, binary)
        new = self._tree_op(op, obj)
        if new is _SAME:
            return self._apply("truncate", text, binary)
        if isinstance(new, bytes):
            return new, binary
        try:
            return json.dumps(new, separators=(",", ":"), allow_nan=True).encode(), binary
        except (ValueError, TypeError, RecursionError):
            return text[: len(text) // 2], binary

    # -- tree operations ----------------------------------------------------------------------

    def _walk(self, obj: Any, want: Callable[[Any, Any], bool] | None = None, stop: float = 0.35
              ) -> list[tuple[Any, Any]]:
        """A random path from the root: [(container, key), ...] down to some node."""
        rng = self.rng
        path: list[tuple[Any, Any]] = []
        node = obj
        for _ in range(64):
            if not isinstance(node, _Container) or not node:
                break
            keys = list(node) if isinstance(node, dict) else range(len(node))
            k = rng.choice(list(keys)) if isinstance(node, dict) else rng.randrange(len(node))
            path.append((node, k))
            child = node[k]
            if want is not None and want(node, k):
                if rng.random() < 0.6 or not isinstance(child, _Container):
                    break
            elif want is None and rng.random() < stop:
                break
            node = child
        return path

    def _rebuild(self, path: list[tuple[Any, Any]], fn: Callable[[Any, Any], Any]) -> Any:
        """Copy the containers along ``path`` and let ``fn(container_copy, key)`` change the last."""
        if not path:
            return _SAME
        copies = []
        for container, key in path:
            copies.append((dict(container) if isinstance(container, dict) else list(container), key))
        last, key = copies[-1]
        fn(last, key)
        for i in range(len(copies) - 2, -1, -1):
            parent, k = copies[i]
            parent[k] = copies[i + 1][0]
        return copies[0][0]

    def _tree_op(self, op: str, obj: Any) -> Any:
        rng = self.rng
        if op == "type":
            v = rng.choice(self.type_bad)
            return self._rebuild(self._walk(obj), lambda c, k: c.__setitem__(k, v))
        if op == "number":
            def numeric(c: Any, k: Any) -> bool:
                x = c[k]
                return (isinstance(x, str) and _looks_numeric(x)) or (isinstance(x, (int, float))
                                                                       and not isinstance(x, bool))
            path = self._walk(obj, numeric)
            if not path or not numeric(*path[-1]):
                path = self._find(obj, numeric)
            if not path:
                return _SAME
            bad = rng.choice(_NUM_BAD_DETECTABLE + [float("nan")] if self.detectable
                             else _NUM_BAD + [float("nan"), float("inf"), -3])
            return self._rebuild(path, lambda c, k: c.__setitem__(k, bad))
        if op == "drop":
            path = self._walk(obj, lambda c, k: isinstance(c, dict))
            path = [p for p in path]
            while path and not isinstance(path[-1][0], dict):
                path.pop()
            if not path:
                return _SAME
            return self._rebuild(path, lambda c, k: c.pop(k, None))
        if op == "add":
            path = self._walk(obj)
            extra_k = rng.choice(("x", "data", "type", "code", "event", "", "\u0000", "b", "u"))
            extra_v = rng.choice(self.type_bad)
            if not path:
                return _SAME

            def add(c: Any, k: Any) -> None:
                if isinstance(c, dict):
                    c[extra_k] = extra_v
                else:
                    c.insert(k, extra_v)
            return self._rebuild(path, add)
        if op == "level":
            def is_level(c: Any, k: Any) -> bool:
                x = c[k]
                return isinstance(c, list) and isinstance(x, list) and 2 <= len(x) <= 6 and all(
                    isinstance(y, (str, int, float)) for y in x)
            path = self._find(obj, is_level)
            if not path:
                return self._tree_op("type", obj)
            bad = rng.choice(self.level_bad)
            return self._rebuild(path, lambda c, k: c.__setitem__(k, bad))
        if op == "seq":
            path = self._find(obj, lambda c, k: isinstance(c, dict) and k in _SEQ_KEYS)
            if not path:
                return self._tree_op("type", obj)
            v = rng.choice(_SEQ_BAD)
            return self._rebuild(path, lambda c, k: c.__setitem__(k, v))
        if op == "huge":
            budget = self.max_bytes
            if rng.random() < 0.5:
                s = "9" * rng.randint(budget // 4, budget)
                return self._rebuild(self._walk(obj), lambda c, k: c.__setitem__(k, s))
            path = self._find(obj, lambda c, k: isinstance(c[k], list) and len(c[k]) > 0)
            if not path:
                return _SAME
            container, key = path[-1]
            items = container[key]
            unit = max(8, len(json.dumps(items)) // max(1, len(items)))
            times = max(2, min(budget // unit // max(1, len(items)), 200_000))
            return self._rebuild(path, lambda c, k: c.__setitem__(k, items * times))
        return _SAME

    def _find(self, obj: Any, want: Callable[[Any, Any], bool], tries: int = 12) -> list[tuple[Any, Any]]:
        """A random path ending where ``want`` holds (a few random descents, then a scan)."""
        for _ in range(tries):
            path = self._walk(obj, want)
            if path and want(*path[-1]):
                return path
        found: list[list[tuple[Any, Any]]] = []

        def scan(node: Any, path: list[tuple[Any, Any]], depth: int) -> None:
            if depth > 12 or len(found) > 64 or not isinstance(node, _Container):
                return
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for k, v in list(items)[:64]:
                p = path + [(node, k)]
                if want(node, k):
                    found.append(p)
                scan(v, p, depth + 1)

        scan(obj, [], 0)
        return self.rng.choice(found) if found else []

    def _pick_leafish(self, obj: Any) -> Any:
        path = self._walk(obj)
        return path[-1][0][path[-1][1]] if path else obj

    def _replace_text(self, obj: Any, fragment: bytes) -> bytes:
        """``obj`` as JSON with a random node replaced by the raw ``fragment``."""
        marker = "\u2603nest\u2603"
        new = self._rebuild(self._walk(obj), lambda c, k: c.__setitem__(k, marker))
        if new is _SAME:
            return fragment
        text = json.dumps(new, separators=(",", ":"), ensure_ascii=False).encode()
        return text.replace(json.dumps(marker, ensure_ascii=False).encode(), fragment, 1)


def _looks_numeric(x: str) -> bool:
    if not x or len(x) > 40:
        return False
    try:
        float(x)
        return True
    except ValueError:
        return False


class _Sentinel:
    def __repr__(self) -> str:
        return "<sentinel>"


_MISSING = _Sentinel()
_NOT_JSON = _Sentinel()
_SAME = _Sentinel()
