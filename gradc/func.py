"""torch.func's transforms: functional_call, grad, grad_and_value, vjp, jvp, jacrev, jacfwd,
hessian and vmap, composable as in PyTorch (vmap(grad(f)) gives per-sample gradients).

They are built on eager autograd. The gradient transforms take history only when an input already
has some (an outer transform or the caller differentiates through them), so grad(grad(f)) is a
second derivative and a top-level grad returns plain tensors. vmap runs the function once per
index of the mapped dimension and stacks the results; that is the same result as a batched
rule, at the cost of one call per sample. randomness='error' raises when the function draws from
gradc's generator, 'different' gives each sample its own draws, 'same' the same draws."""
from contextlib import contextmanager

from . import autograd, pytree
from . import random as _random
from .autograd_functional import jacobian as _jacobian
from .errors import GradcError, ShapeError
from .functions import stack
from .tensor import Tensor
from .shapes import shape_or

__all__ = ["functional_call", "grad", "grad_and_value", "vjp", "jvp", "jacrev", "jacfwd", "hessian", "vmap"]


# ------------------------------------------------------------------------------ functional_call
def functional_call(module, parameter_and_buffer_dicts, args=(), kwargs=None, *, tie_weights=True, strict=False):
    """module(*args, **kwargs) with some of its parameters and buffers replaced by the tensors of
    the dict(s), by dotted name; the module is unchanged afterwards. With tie_weights a tensor
    registered under two names (a tied embedding) is replaced under both."""
    dicts = parameter_and_buffer_dicts if isinstance(parameter_and_buffer_dicts, (list, tuple)) \
        else [parameter_and_buffer_dicts]
    given = {}
    for d in dicts:
        for k, v in d.items():
            if k in given:
                raise GradcError(f"functional_call: {k!r} appears in more than one of the dicts")
            given[k] = v
    names = {}   # id(tensor) -> every (owner, store, attribute) that holds it
    for prefix, m in module.named_modules(remove_duplicate=False):
        for store in ("_parameters", "_buffers"):
            for attr, t in getattr(m, store).items():
                if t is not None:
                    names.setdefault(id(t), []).append((f"{prefix}.{attr}" if prefix else attr, m, store, attr))
    where = {name: (m, store, attr, key) for key, entries in names.items() for name, m, store, attr in entries}
    unknown = sorted(set(given) - set(where))
    if unknown:
        raise GradcError(f"functional_call: {type(module).__name__} has no parameter or buffer {unknown[0]!r}"
                         f"{f' (and {len(unknown) - 1} more)' if len(unknown) > 1 else ''}")
    if strict:
        missing = sorted(set(where) - set(given))
        if missing:
            raise GradcError(f"functional_call(strict=True): no value given for {missing[:3]}")
    swaps = {}
    for name, value in given.items():
        m, store, attr, key = where[name]
        targets = [(e[1], e[2], e[3]) for e in names[key] if tie_weights and e[0] not in given] + [(m, store, attr)]
        for target in targets:
            swaps[(id(target[0]), target[1], target[2])] = (target, value)
    with _swapped(swaps.values()):
        return module(*args, **(kwargs or {}))


@contextmanager
def _swapped(swaps):
    from .nn.module import structure_changed
    undo = []
    try:
        for (m, store, attr), value in swaps:
            table = m.__dict__[store]
            undo.append((table, attr, table[attr]))
            table[attr] = value
        structure_changed()
        yield
    finally:
        for table, attr, old in reversed(undo):
            table[attr] = old
        structure_changed()


# ------------------------------------------------------------------------------ gradients
def _tracked(tree):
    """The tensors of `tree` made leaves of this transform's differentiation (keeping their own
    history, when they have one, for an outer transform); returns (tree, leaves, keep history)."""
    leaves, spec = pytree.flatten(tree)
    keep = any(t.requires_grad for t in leaves)
    mine = [t.view_as(t) if t.requires_grad else t.detach().requires_grad_(True) for t in leaves]
    return pytree.unflatten(spec, mine), mine, spec, keep


def _argnums(argnums, n, name):
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for a in nums:
        if not isinstance(a, int) or not -n <= a < n:
            raise GradcError(f"{name}: argnums {argnums!r} does not fit a call with {n} positional argument(s)")
    return nums, isinstance(argnums, int)


def _split_aux(out, has_aux, name):
    if not has_aux:
        return out, None
    if not isinstance(out, tuple) or len(out) != 2:
        raise GradcError(f"{name}(has_aux=True): the function must return (output, aux)")
    return out


def _plain(tree, keep):
    leaves, spec = pytree.flatten(tree)
    return pytree.unflatten(spec, [t if keep else t.detach() for t in leaves])


def grad_and_value(func, argnums=0, has_aux=False):
    """A function returning (gradient of func's one-element output with respect to the arguments
    at argnums, the output) (and aux with has_aux: ((gradient), (output, aux)))."""
    def wrapper(*args, **kwargs):
        nums, single = _argnums(argnums, len(args), "grad")
        args = list(args)
        tracked = {}
        with autograd.enable_grad():
            for a in nums:
                args[a], leaves, spec, keep = _tracked(args[a])
                tracked[a] = (leaves, spec, keep)
            out, aux = _split_aux(func(*args, **kwargs), has_aux, "grad")
            if not isinstance(out, Tensor) or out.numel() != 1:
                raise GradcError(f"grad: the function must return a one-element tensor, got "
                                 f"{shape_or(out, type(out).__name__)}")
            every = [t for a in nums for t in tracked[a][0]]
            keep = any(tracked[a][2] for a in nums)
            if out.requires_grad:
                got = autograd.grad(out, every, create_graph=keep, allow_unused=True)
            else:
                got = [None] * len(every)
        grads, i = [], 0
        for a in nums:
            leaves, spec, _ = tracked[a]
            part = [g if g is not None else t.detach().new_zeros(t.shape) for g, t in zip(got[i:i + len(leaves)], leaves)]
            i += len(leaves)
            grads.append(pytree.unflatten(spec, [g if keep else g.detach() for g in part]))
        grads = grads[0] if single else tuple(grads)
        value = out if keep else out.detach()
        return (grads, (value, _plain(aux, keep))) if has_aux else (grads, value)
    return wrapper


def grad(func, argnums=0, has_aux=False):
    """A function returning the gradient of func's one-element output with respect to the
    arguments at argnums (a tensor, or a dict/tuple of them); with has_aux, (gradient, aux)."""
    both = grad_and_value(func, argnums, has_aux)

    def wrapper(*args, **kwargs):
        g, value = both(*args, **kwargs)
        return (g, value[1]) if has_aux else g
    return wrapper


def vjp(func, *primals, has_aux=False):
    """(func(*primals), vjp_fn): vjp_fn(cotangents) gives one gradient per primal."""
    with autograd.enable_grad():
        tracked = [_tracked(p) for p in primals]
        out, aux = _split_aux(func(*[t[0] for t in tracked]), has_aux, "vjp")
    keep = any(t[3] for t in tracked)
    outs, out_spec = pytree.flatten(out)

    def vjp_fn(cotangents):
        cots, _ = pytree.flatten(cotangents)
        if len(cots) != len(outs):
            raise ShapeError(f"vjp: {len(cots)} cotangents for {len(outs)} outputs")
        every = [t for tr in tracked for t in tr[1]]
        pairs = [(o, c) for o, c in zip(outs, cots) if o.requires_grad]
        got = autograd.grad([o for o, _ in pairs], every, [c for _, c in pairs], retain_graph=True,
                            create_graph=keep, allow_unused=True) if pairs else [None] * len(every)
        res, i = [], 0
        for _, leaves, spec, _ in tracked:
            part = [g if g is not None else t.detach().new_zeros(t.shape) for g, t in zip(got[i:i + len(leaves)], leaves)]
            i += len(leaves)
            res.append(pytree.unflatten(spec, [g if keep else g.detach() for g in part]))
        return tuple(res)

    value = _plain(out, keep)
    return (value, vjp_fn, _plain(aux, keep)) if has_aux else (value, vjp_fn)


def _keeping_aux(func, has_aux, name, box):
    """func, or (with has_aux) func returning its output only and putting its aux into `box`."""
    if not has_aux:
        return func

    def output_only(*args):
        out, aux = _split_aux(func(*args), True, name)
        box.append(aux)
        return out
    return output_only


def jvp(func, primals, tangents, *, has_aux=False):
    """(func(*primals), J tangents), as the vjp of a vjp (and aux with has_aux)."""
    from .autograd_functional import jvp as _jvp
    box, keep = [], any(p.requires_grad for p in primals)
    out, jv = _jvp(_keeping_aux(func, has_aux, "jvp", box), tuple(primals), tuple(tangents), create_graph=keep)
    return (out, jv, _plain(box[-1], keep)) if has_aux else (out, jv)


def _jac(strategy, name):
    def transform(func, argnums=0, has_aux=False):
        def wrapper(*args):
            nums, single = _argnums(argnums, len(args), name)
            box = []
            inner = _keeping_aux(func, has_aux, name, box)

            def of(*picked):
                full = list(args)
                for a, v in zip(nums, picked):
                    full[a] = v
                return inner(*full)
            keep = any(args[a].requires_grad for a in nums)
            res = _jacobian(of, tuple(args[a] for a in nums), create_graph=keep, strategy=strategy)
            if isinstance(res, tuple) and res and isinstance(res[0], tuple):   # several outputs
                res = tuple(r[0] if single else r for r in res)
            else:
                res = res[0] if single else res
            return (res, _plain(box[-1], keep)) if has_aux else res
        return wrapper
    return transform


jacrev = _jac("reverse-mode", "jacrev")
jacfwd = _jac("forward-mode", "jacfwd")


def hessian(func, argnums=0):
    """The Hessian of a one-element output: jacfwd of jacrev, as torch.func.hessian."""
    return jacfwd(jacrev(func, argnums), argnums)


# ------------------------------------------------------------------------------ vmap
def vmap(func, in_dims=0, out_dims=0, randomness="error", *, chunk_size=None):
    """func mapped over dimension in_dims of its arguments (an int for all, or one entry per
    positional argument: an int, or None for an argument passed whole to every call); the results
    are stacked at out_dims."""
    if randomness not in ("error", "different", "same"):
        raise GradcError(f"vmap: randomness must be 'error', 'different' or 'same', got {randomness!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise GradcError(f"vmap: chunk_size must be a positive int or None, got {chunk_size!r}")

    def wrapper(*args, **kwargs):
        dims = in_dims if isinstance(in_dims, (tuple, list)) else (in_dims,) * len(args)
        if len(dims) != len(args):
            raise GradcError(f"vmap: in_dims has {len(dims)} entries for {len(args)} positional arguments")
        mapped, size = [], None
        for k, (a, d) in enumerate(zip(args, dims)):
            leaves, spec = pytree.flatten(a)
            if d is not None:
                for t in leaves:
                    dim = d % t.ndim if t.ndim else None
                    if dim is None:
                        raise ShapeError(f"vmap: argument {k} has a 0-d tensor, which has no dimension {d} to map")
                    if size is None:
                        size = t.shape[dim]
                    elif t.shape[dim] != size:
                        raise ShapeError(f"vmap: the mapped dimensions differ in size ({size} and {t.shape[dim]} in "
                                         f"argument {k}); every mapped tensor needs the same size there")
            mapped.append((leaves, spec, d))
        if size is None:
            raise GradcError("vmap: no argument is mapped (every in_dims is None, or no tensor is passed)")
        state = _random.get_rng_state()
        results = []
        for i in range(size):
            call = [a if d is None else pytree.unflatten(spec, [t.select(d % t.ndim, i) for t in leaves])
                    for (leaves, spec, d), a in zip(mapped, args)]
            if randomness == "same":
                _random.set_rng_state(state)
            before = _random.get_rng_state() if randomness == "error" else None
            results.append(func(*call, **kwargs))
            if before is not None and _random.get_rng_state() != before:
                raise GradcError("vmap: the function draws random numbers; pass randomness='different' (each sample "
                                 "its own) or 'same' (one draw shared by every sample)")
        return _stack_results(results, out_dims)
    return wrapper


def _stack_results(results, out_dims):
    first, spec = pytree.flatten(results[0])
    columns = [pytree.flatten(r)[0] for r in results]
    dims = out_dims if isinstance(out_dims, (tuple, list)) else (out_dims,) * len(first)
    if len(dims) != len(first):
        raise GradcError(f"vmap: out_dims has {len(dims)} entries for {len(first)} outputs")
    stacked = []
    for j, d in enumerate(dims):
        parts = [c[j] for c in columns]
        if not isinstance(parts[0], Tensor):
            raise GradcError("vmap: the function must return tensors (or tuples, lists and dicts of them)")
        stacked.append(stack(parts, d if d >= 0 else d + parts[0].ndim + 1))
    return pytree.unflatten(spec, stacked)
