"""Parity harness for layers against PyTorch: the same weights (a PyTorch state dict's numpy arrays
loaded into the gradc module), the same inputs and the same output cotangents; forward values,
input gradients and parameter gradients must agree, eagerly and under gradc.compile (forward,
loss and backward traced as one program)."""
import numpy as np

import gradc
from gradc.testing import assert_close


def torch_state_numpy(t_module):
    return {k: v.detach().cpu().numpy().copy() for k, v in t_module.state_dict().items()}


def load_from_torch(g_module, t_module):
    """Load the torch module's state dict into the gradc module, after checking that both list the
    same keys with the same shapes, in the same order."""
    t_state = torch_state_numpy(t_module)
    g_state = g_module.state_dict()
    assert list(g_state) == list(t_state), f"state-dict keys differ:\n gradc {list(g_state)}\n torch {list(t_state)}"
    for k, v in t_state.items():
        assert g_state[k].shape == v.shape, f"{k}: gradc shape {g_state[k].shape}, torch {v.shape}"
    g_module.load_state_dict(t_state)


def _as_tuple(x):
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _flat(out):
    """Tensors of a (nested) output, in order; None entries are dropped."""
    res = []
    for o in _as_tuple(out):
        if isinstance(o, (tuple, list)):
            res.extend(_flat(o))
        elif o is not None:
            res.append(o)
    return res


def _torch_inputs(torch, arrays, grads):
    return [torch.tensor(a, requires_grad=bool(g)) for a, g in zip(arrays, grads)]


def _gradc_inputs(arrays, grads):
    return [gradc.tensor(a, requires_grad=bool(g)) for a, g in zip(arrays, grads)]


def check_module(torch, g_module, t_module, arrays, grads=None, rtol=1e-7, atol=1e-9, compiled=True, seed=0,
                 call=None, fwd_only=False):
    """Compare g_module(*inputs) with t_module(*inputs): outputs, gradients with respect to the
    inputs marked in `grads` and every parameter gradient, eagerly and (when `compiled`) as a
    compiled forward+backward. `call(module, *inputs)` overrides how the module is called."""
    call = call or (lambda m, *xs: m(*xs))
    grads = [np.issubdtype(np.asarray(a).dtype, np.floating) for a in arrays] if grads is None else grads
    load_from_torch(g_module, t_module)
    t_module.zero_grad()
    t_in = _torch_inputs(torch, arrays, grads)
    t_out = _flat(call(t_module, *t_in))
    rng = np.random.default_rng(seed)
    cots = [rng.standard_normal(tuple(o.shape)) for o in t_out]
    t_params = dict(t_module.named_parameters())
    if not fwd_only:
        total = sum((o * torch.tensor(c, dtype=o.dtype)).sum() for o, c in zip(t_out, cots))
        total.backward()
    expect_out = [o.detach().numpy() for o in t_out]
    expect_in = [t.grad.numpy() if t.grad is not None else None for t in t_in]
    expect_par = {k: p.grad.numpy() for k, p in t_params.items() if p.grad is not None}

    def run(x_list):
        out = _flat(call(g_module, *x_list))
        if not fwd_only:
            total = None
            for o, c in zip(out, cots):
                term = (o * gradc.tensor(c, dtype=o.dtype)).sum()
                total = term if total is None else total + term
            total.backward()
        return out

    modes = [("eager", run)]
    if compiled:
        modes.append(("compiled", gradc.compile(run, fullgraph=True)))
    for name, fn in modes:
        g_module.zero_grad()
        g_in = _gradc_inputs(arrays, grads)
        out = fn(g_in)
        assert len(out) == len(expect_out), f"{name}: {len(out)} outputs, torch has {len(expect_out)}"
        for i, (o, e) in enumerate(zip(out, expect_out)):
            assert_close(o.detach(), e, rtol=rtol, atol=atol, check_dtype=False, msg=f"{name} output {i}")
        if fwd_only:
            continue
        for i, (x, e) in enumerate(zip(g_in, expect_in)):
            if e is not None:
                assert x.grad is not None, f"{name}: input {i} got no gradient"
                assert_close(x.grad, e, rtol=rtol, atol=atol, check_dtype=False, msg=f"{name} d input {i}")
        g_params = dict(g_module.named_parameters())
        for k, e in expect_par.items():
            assert g_params[k].grad is not None, f"{name}: parameter {k} got no gradient"
            assert_close(g_params[k].grad, e, rtol=rtol, atol=atol, check_dtype=False, msg=f"{name} d {k}")
        for k, p in g_params.items():
            if k not in expect_par:
                assert p.grad is None or not np.any(p.grad.numpy()), f"{name}: {k} has a gradient, torch's has none"


def check_function(torch, g_fn, t_fn, arrays, grads=None, rtol=1e-7, atol=1e-9, compiled=True, seed=0):
    """check_module for a plain function of tensors (F.* against torch.nn.functional.*)."""
    tm, gm = torch.nn.Module(), gradc.nn.Module()
    check_module(torch, gm, tm, arrays, grads, rtol, atol, compiled, seed,
                 call=lambda m, *xs: (t_fn if m is tm else g_fn)(*xs))
