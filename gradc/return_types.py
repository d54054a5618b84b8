"""torch.return_types: the named tuples max(dim), sort, topk, svd, ... return, printed in
PyTorch's layout (`gradc.return_types.max(\nvalues=...,\nindices=...)`)."""
import collections


def return_type(name, fields):
    base = collections.namedtuple(name, fields)

    def __repr__(self):
        return f"gradc.return_types.{name}(\n" + ",\n".join(f"{f}={v!r}" for f, v in zip(self._fields, self)) + ")"
    return type(name, (base,), {"__slots__": (), "__repr__": __repr__})
