"""Software prefetch of per-device state rows, for kernels that gather random rows.

An interleaved batch over 10^4 devices touches a random state row per sample; the
hardware prefetcher cannot predict it, and an out-of-order core only overlaps one or two
such misses with the ~100 instructions of work per sample. Asking for the row of the
sample ``k`` positions ahead (``llvm.prefetch``, x86 ``prefetchw``) hides that latency.
A prefetch is only a hint: it never faults and never changes a result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["prefetch_row"]


@intrinsic
def _prefetch_row(typingctx: Any, arr: Any, row: Any, col: Any) -> Any:
    """Hint the CPU to fetch ``arr[row, col]`` (2-D array) for writing, into all caches.

    ``row`` and ``col`` must be in range (no bounds check: callers prefetch indices that
    they validated, e.g. ``device`` after ``as_batch``).
    """
    sig = types.void(arr, row, col)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aryty, rowty, colty = signature.args
        ary = context.make_array(aryty)(context, builder, args[0])
        idx = [
            context.cast(builder, args[1], rowty, types.intp),
            context.cast(builder, args[2], colty, types.intp),
        ]
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, idx, wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # rw=1 (the row is written back), locality=3 (keep in all levels), data cache
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(1), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen


#: ``prefetch_row(arr, row, col)`` inside ``@njit`` code (typed for callers' type checks:
#: the intrinsic's Python signature includes Numba's typing context).
prefetch_row = cast(Callable[[Any, Any, Any], None], _prefetch_row)
