"""Test helpers for users and for gradc's own tests, like torch.autograd.gradcheck and
torch.testing.assert_close: `gradcheck` compares autograd against float64 central differences,
`gradgradcheck` does the same for the gradient's own gradient (create_graph), `assert_close`
compares tensors or arrays within a tolerance and says where they differ most."""
import numpy as np

from . import dtypes as D
from .autograd import enable_grad, grad, no_grad
from .tensor import Tensor
from .functions import tensor

# Default (rtol, atol) per dtype for assert_close, as in torch.testing.
_TOLERANCES = {"float16": (1e-3, 1e-5), "float32": (1.3e-6, 1e-5), "float64": (1e-7, 1e-7)}


def _to_numpy(x):
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _float_outputs(out):
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o for o in outs if isinstance(o, Tensor) and o.dtype.is_floating_point]


def assert_close(actual, expected, rtol=None, atol=None, check_dtype=True, msg=""):
    """Assert |actual - expected| <= atol + rtol * |expected| elementwise (NaNs equal each other).

    Tensors, arrays, numbers and (nested) tuples/lists of them are accepted. Shapes must match
    exactly; with check_dtype, two tensors (or a tensor and an array) must have the same dtype.
    Default tolerances come from the dtype of `actual`."""
    prefix = f"{msg}: " if msg else ""
    if isinstance(actual, (tuple, list)):
        assert isinstance(expected, (tuple, list)) and len(actual) == len(expected), \
            f"{prefix}expected a sequence of {len(actual)} values, got {expected!r}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_close(a, e, rtol, atol, check_dtype, f"{msg}[{i}]")
        return
    a, e = _to_numpy(actual), _to_numpy(expected)
    if check_dtype and isinstance(actual, Tensor) and isinstance(expected, (Tensor, np.ndarray)):
        want = expected.dtype if isinstance(expected, Tensor) else D.get_dtype(e.dtype)
        assert actual.dtype is want, f"{prefix}dtype {actual.dtype!r} != expected {want!r}"
    assert a.shape == e.shape, f"{prefix}shape {tuple(a.shape)} != expected {tuple(e.shape)}"
    if a.dtype.kind in "biu" and e.dtype.kind in "biu":
        bad = a != e
        if bad.any():
            i = np.unravel_index(int(np.argmax(bad)), a.shape)
            raise AssertionError(f"{prefix}{int(bad.sum())} of {a.size} elements differ; first at index "
                                 f"{tuple(map(int, i))}: {a[i]!r} != expected {e[i]!r}")
        return
    default = _TOLERANCES.get(a.dtype.name, _TOLERANCES["float32"])
    rtol = default[0] if rtol is None else rtol
    atol = default[1] if atol is None else atol
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    both_nan = np.isnan(a64) & np.isnan(e64)
    same_inf = np.isinf(a64) & (a64 == e64)
    err = np.where(both_nan | same_inf, 0.0, np.abs(a64 - e64))
    excess = err - (atol + rtol * np.abs(np.where(same_inf, 0.0, e64)))
    excess = np.where(np.isnan(excess), np.inf, excess)
    if a.size and excess.max() > 0:
        i = np.unravel_index(int(np.argmax(excess)), a.shape)
        raise AssertionError(f"{prefix}{int((excess > 0).sum())} of {a.size} elements differ beyond "
                             f"rtol={rtol:g}, atol={atol:g}; worst at index {tuple(map(int, i))}: "
                             f"{a64[i]!r} vs expected {e64[i]!r} (abs error {err[i]:.3g})")


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0, raise_exception=True):
    """Check gradc's autograd for `fn(*inputs)` against central differences in float64.

    Every input that requires grad must be a float64 tensor. Outputs may be a tensor or a tuple;
    their floating-point parts are projected onto fixed random directions v, so one backward pass
    gives J^T v for each input, compared with (f(x + eps e_i) - f(x - eps e_i)) / 2 eps per element.
    Raises AssertionError naming the input, the worst element and both values (or returns False,
    with raise_exception=False); returns True."""
    if not raise_exception:
        try:
            return gradcheck(fn, inputs, eps, atol, rtol, seed)
        except AssertionError:
            return False
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    diff = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not diff:
        raise ValueError("gradcheck: no input requires grad")
    for i in diff:
        if inputs[i].dtype is not D.float64:
            raise ValueError(f"gradcheck: input {i} is {inputs[i].dtype!r}; finite differences need float64")

    leaves = [x.detach().requires_grad_() if i in diff else x for i, x in enumerate(inputs)]
    outs = _float_outputs(fn(*leaves))
    if not outs:
        raise ValueError("gradcheck: fn returned no floating-point tensor")
    rng = np.random.default_rng(seed)
    vs = [rng.standard_normal(o.shape) for o in outs]

    def project(outputs):
        return sum(float(np.sum(_to_numpy(o) * v)) for o, v in zip(outputs, vs))

    total = None
    for o, v in zip(outs, vs):
        if o.requires_grad:
            term = (o * tensor(v, dtype=o.dtype)).sum()
            total = term if total is None else total + term
    if total is not None:
        total.backward()

    for i in diff:
        x = inputs[i]
        base = _to_numpy(x).astype(np.float64)
        analytic = leaves[i].grad
        analytic = np.zeros_like(base) if analytic is None else _to_numpy(analytic)
        assert analytic.shape == base.shape, \
            f"gradcheck: gradient of input {i} has shape {tuple(analytic.shape)}, the input has shape {tuple(base.shape)}"
        numeric = np.zeros_like(base)
        with no_grad():
            for j in range(base.size):
                vals = []
                for step in (eps, -eps):
                    data = base.copy()
                    data.flat[j] += step
                    args = list(inputs)
                    args[i] = tensor(data, dtype=D.float64)
                    vals.append(project(_float_outputs(fn(*args))))
                numeric.flat[j] = (vals[0] - vals[1]) / (2 * eps)
        excess = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        if base.size and not (excess.max() <= 0):  # also catches NaN
            j = np.unravel_index(int(np.nanargmax(np.where(np.isnan(excess), np.inf, excess))), base.shape)
            raise AssertionError(
                f"gradcheck: gradient of input {i} (shape {tuple(base.shape)}) is wrong at element {tuple(map(int, j))}: "
                f"autograd gives {analytic[j]!r}, finite differences give {numeric[j]!r} "
                f"(eps={eps:g}, atol={atol:g}, rtol={rtol:g}; {int((excess > 0).sum())} of {base.size} elements off)")
    return True


def gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0, raise_exception=True):
    """gradcheck of the gradient itself: the VJP of fn's outputs (projected onto fixed random
    directions) taken with create_graph=True, differentiated again and compared with central
    differences of that VJP (torch.autograd.gradgradcheck)."""
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    diff = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    rng = np.random.default_rng(seed + 1)
    vs = {}

    def vjp(*xs):
        with enable_grad():
            xs = [x if i not in diff or x.requires_grad else x.detach().requires_grad_() for i, x in enumerate(xs)]
            outs = [o for o in _float_outputs(fn(*xs)) if o.requires_grad]
            if not outs:
                raise ValueError("gradgradcheck: no output of fn requires grad")
            total = sum((o * tensor(vs.setdefault(k, rng.standard_normal(o.shape)), dtype=o.dtype)).sum()
                        for k, o in enumerate(outs))
            return grad(total, [xs[i] for i in diff], create_graph=True, materialize_grads=True)
    return gradcheck(vjp, inputs, eps, atol, rtol, seed, raise_exception)
