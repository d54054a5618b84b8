"""The kernel IR: a fused group as loops, loads, stores and reductions, between fusion and the
backends that render loops (C now; CUDA can render the same records).

A group lowers to a `Kernel` over an iteration space of `rows` x `width` (rows: the loop's leading
axis; width: the elements of one row of its widest value). Rows are split into `chunks`, a number
fixed by the shape alone, that threads take in any order. Within a row the kernel runs `phases`:
each phase is one loop over the row's elements whose body holds per-element values in registers
(`Let`), loads with index expressions derived from shapes (`Load`), stores (`Store`) and
accumulations (`Accumulate`): reductions along the row finish when the phase ends, and reductions
across rows add into a per-chunk partial that is combined in chunk order after the loop, so the
result has the same bits on every run and for any thread count. Row-level values (a row's sum,
then what is computed from it) are `Let`s before a phase's loop. The kernel records every byte it
reads and writes (`bytes_read`, `bytes_written`), so the traffic of a call is known exactly.

`lower_group` returns None with a reason for a group the scheme does not cover (an op without a C
expression, float16 or integer data, a reduction over some inner axes only); such a group runs
through the reference NumPy lowering."""
from .ir import (Accumulate, ColReduce, Index, Kernel, Let, Literal, Load, Param, Phase, RowValue,  # noqa: F401
                 Store, lower_group, C_OPS)
