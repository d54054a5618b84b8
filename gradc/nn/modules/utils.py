"""torch.nn.modules.utils: the helpers custom layers use to take an int or a tuple per dim."""
import collections.abc
import itertools


def _ntuple(n, name="parse"):
    def parse(x):
        if isinstance(x, collections.abc.Iterable) and not isinstance(x, str):
            return tuple(x)
        return tuple(itertools.repeat(x, n))
    parse.__name__ = name
    return parse


_single, _pair, _triple, _quadruple = (_ntuple(n, f"_{w}") for n, w in
                                       ((1, "single"), (2, "pair"), (3, "triple"), (4, "quadruple")))
