"""``exp`` bit for bit as glibc's libm computes it, inlined into Numba kernels.

The anomaly kernel's two libm ``exp`` calls per sample (history decay, score) were a third
of its loop's time (1.6x without them, measured): each goes through glibc's errno wrapper
and its ifunc, and a call clobbers every vector register, so the loop spilled around it.
The kernel must stay bit-identical to its reference, which uses ``math.exp`` (libm), so the
inlined :func:`exp` is glibc's own algorithm (``sysdeps/ieee754/dbl-64/e_exp.c`` and
``exp_data.c`` since glibc 2.28, from Arm's optimized-routines: Szabolcs Nagy, 2018) with
the fused multiply-adds exactly where GCC put them in the x86-64 FMA build (``__exp_fma``,
read from its disassembly): the same IEEE operations in the same order give the same bits.
It is only used where it is *checked* to equal the host's libm (:func:`constants`);
elsewhere (another libm, no FMA) every call goes to libm.

Callers pass the :func:`constants` array (or a view of it) to :func:`exp` and
:func:`exp_near_0` from their own ``@njit`` code.
"""

from __future__ import annotations

import decimal
import functools
import math
import struct
from collections.abc import Callable
from typing import Any, cast

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_Arr = np.ndarray

# exp(x) = 2^(k/N) · exp(r), N = 128, |r| <= ln2/(2N); 2^(k/N) from a 128-entry table.
_INVLN2N = float.fromhex("0x1.71547652b82fep+7")  # N / ln 2
_NEGLN2HI = float.fromhex("-0x1.62e42fefa0000p-8")  # -ln 2 / N, high part
_NEGLN2LO = float.fromhex("-0x1.cf79abc9e3b3ap-47")  # -ln 2 / N, low part
_POLY = (  # C2..C5 of exp(r) - 1 ~ r + C2 r^2 + C3 r^3 + C4 r^4 + C5 r^5
    float.fromhex("0x1.ffffffffffdbdp-2"),
    float.fromhex("0x1.555555555543cp-3"),
    float.fromhex("0x1.55555cf172b91p-5"),
    float.fromhex("0x1.1111167a4d017p-7"),
)
_SHIFT = float.fromhex("0x1.8p52")  # adding it rounds to an integer, kept in the low bits
FAST_MIN = 2.0**-54  # glibc takes its fast path for 2^-54 <= |x| < 512 only
_FAST_MAX = 512.0
# ... tested on the biased exponent: top - 0x3C9 <= 0x3E (as uint64; 0x3C9 = 1023 - 54)
_FAST_TOP = np.array([0x3C9, 0], dtype=np.uint64)
NEVER = np.array([0x800, 1], dtype=np.uint64)  # beyond any exponent: always libm
# Layout of the constants array ``c`` (:func:`constants`), as float64 (the first two are
# uint64 bit patterns): [fast top, 0, N/ln2, -ln2/N hi, lo, C2, C3, C4, C5, shift, table
# (2 per k)].
_TAB = 10


def _f64_bits(value: float) -> int:
    return int(struct.unpack("<Q", struct.pack("<d", value))[0])


def _exp2_table() -> np.ndarray:
    """glibc's ``__exp_data.tab``, derived: for k < 128, the correctly rounded
    ``s = 2^(k/128)`` (bits minus ``k << 45``, which the kernel adds back with the
    exponent) and ``tail = (2^(k/128) - s) / s``, rounded; 60 digits are ample."""
    ctx = decimal.Context(prec=60)
    ln2 = ctx.ln(decimal.Decimal(2))
    tab = np.empty(256, dtype=np.uint64)
    for k in range(128):
        exact = ctx.exp(ctx.multiply(ctx.divide(decimal.Decimal(k), 128), ln2))
        scale = float(exact)
        rounded = decimal.Decimal(scale)  # exact: a double is a short decimal
        tail = float(ctx.divide(ctx.subtract(exact, rounded), rounded))
        tab[2 * k] = _f64_bits(tail)
        tab[2 * k + 1] = (_f64_bits(scale) - (k << 45)) % 2**64
    return tab


@intrinsic
def _fma_intrinsic(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
    """``a * b + c`` rounded once (``llvm.fma.f64``: one instruction where FMA exists)."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        f64 = ir.DoubleType()
        fnty = ir.FunctionType(f64, [f64, f64, f64])
        fma = cgutils.get_or_insert_function(builder.module, fnty, "llvm.fma.f64")
        return builder.call(fma, args)

    return sig, codegen


@intrinsic
def _bits_intrinsic(typingctx: Any, a: Any) -> Any:
    """The IEEE bits of a float64, as uint64."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.IntType(64))

    return types.uint64(types.float64), codegen


@intrinsic
def _float_intrinsic(typingctx: Any, a: Any) -> Any:
    """The float64 whose IEEE bits are the uint64 ``a``."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.uint64), codegen


# Typed for callers' type checks (the intrinsics' Python signatures include the context).
_fma = cast(Callable[[float, float, float], float], _fma_intrinsic)
_bits = cast(Callable[[float], Any], _bits_intrinsic)  # a uint64 inside @njit
_float = cast(Callable[[Any], float], _float_intrinsic)


@njit(inline="always")
def exp(x: float, c: _Arr) -> float:
    """``math.exp(x)``, bit for bit, inlined where the host's libm is glibc's (see above).

    ``c`` is :func:`constants`. Outside glibc's fast path (tiny, large,
    non-finite ``x``), and everywhere when the check failed (``c[0]`` = 0x800), libm.
    """
    # glibc's own test: biased exponent in [top12(2^-54), top12(512)), i.e. 2^-54 <= |x|
    # < 512 (NaN/inf fail); the lower bound c[0] is 0x800 when the check failed,
    # which no exponent reaches (the unsigned difference wraps): libm for every x.
    if ((_bits(x) >> np.uint64(52)) & np.uint64(0x7FF)) - _bits(c[0]) > np.uint64(0x3E):
        return math.exp(x)
    kd = _fma(x, c[2], c[9])  # x·N/ln2 + shift: k in the low bits
    ki = _bits(kd)
    kd = kd - c[9]
    r = _fma(kd, c[4], _fma(kd, c[3], x))  # x - k·ln2/N, in two parts
    idx = np.uint64(_TAB) + ((ki & np.uint64(127)) << np.uint64(1))
    scale = _float(_bits(c[idx + np.uint64(1)]) + (ki << np.uint64(45)))  # 2^(k/N)
    r2 = r * r
    tmp = _fma(r, c[6], c[5])  # C2 + r·C3
    tmp = _fma(tmp, r2, c[idx] + r)  # tail + r + r²(C2 + r·C3)
    tmp = _fma(r2 * r2, _fma(r, c[8], c[7]), tmp)  # + r⁴(C4 + r·C5)
    return _fma(scale, tmp, scale)


@njit(inline="always")
def exp_near_0(x: float, c: _Arr) -> float:
    """:func:`exp`, with a shorter dependency chain for ``2^-54 <= |x| < 0.0027``.

    There ``|x|·N/ln2 < 0.4986``, so glibc's rounding gives ``k = 0``: the reduced
    argument is ``x`` itself, the table entry is ``(tail, scale) = (0, 1.0)``, and what
    remains of the algorithm is its polynomial and ``1·tmp + 1``, exactly as below. For
    the history decay ``exp(-Δt/τ)`` of densely sampled series (Δt/τ = 1/1800 at 1 Hz).
    """
    ax = abs(x)
    if ax < 0.0027 and ax >= FAST_MIN and _bits(c[1]) == np.uint64(0):  # else: check failed
        r2 = x * x
        tmp = _fma(_fma(x, c[6], c[5]), r2, x)  # tail + r = 0 + x
        tmp = _fma(r2 * r2, _fma(x, c[8], c[7]), tmp)
        return _fma(1.0, tmp, 1.0)
    return exp(x, c)


@njit(cache=True, nogil=True)
def mismatches(x: _Arr, c: _Arr) -> int:
    """How many times :func:`exp` or :func:`exp_near_0` and libm's ``exp`` disagree
    on an ``x`` (bits; NaN == NaN)."""
    bad = 0
    for i in range(x.shape[0]):
        b = math.exp(x[i])
        for a in (exp(x[i], c), exp_near_0(x[i], c)):
            if _bits(a) != _bits(b) and not (a != a and b != b):
                bad += 1
    return bad


def check_inputs() -> np.ndarray:
    """Deterministic inputs over glibc's fast path: every binade of ``|x|`` in
    [2^-54, 512) (log-uniform, both signs) and dense uniform draws over [-40, 0], where
    the kernel's arguments lie and where another libm's roundings would show (the
    non-FMA glibc build differs from the FMA one on ~7e-4 of such x: ~90 expected here)."""
    rng = np.random.default_rng(20261122)
    mag = np.exp2(rng.uniform(-54.0, 9.0, 1 << 16))
    sign = np.where(rng.random(1 << 16) < 0.5, -1.0, 1.0)
    edges = [FAST_MIN, np.nextafter(_FAST_MAX, 0.0), 1.0, 0.5, np.log(2.0)]
    return np.concatenate(
        [mag * sign, rng.uniform(-40.0, 0.0, 1 << 17), edges, np.negative(edges)]
    ).astype(np.float64)


@functools.cache
def constants() -> np.ndarray:
    """The inlined ``exp``'s constants, with its fast range enabled only if it equals this
    host's libm on :func:`check_inputs` (else ``NEVER``: libm for every call)."""
    table = _exp2_table().view(np.float64)
    head = [_INVLN2N, _NEGLN2HI, _NEGLN2LO, *_POLY, _SHIFT]
    consts = np.concatenate([_FAST_TOP.view(np.float64), head, table])
    if mismatches(check_inputs(), consts) != 0:
        consts[:2] = NEVER.view(np.float64)
    return consts


def inlined() -> bool:
    """Whether the kernels use the inlined ``exp`` on this host (else libm's, same bits)."""
    return bool(constants()[:1].view(np.uint64)[0] == _FAST_TOP[0])
