"""torch.func against PyTorch: per-sample gradients (vmap of grad over functional_call), a MAML
inner step differentiated through functional_call, grad of grad, jacrev, jacfwd, hessian, vjp,
jvp, vmap's in_dims/out_dims; and vmap's randomness modes."""
import numpy as np
import pytest

import gradc

torch = pytest.importorskip("torch")


def _run(torch):
    nn, F = torch.nn, torch.nn.functional
    def from_np(a):
        return torch.tensor(np.asarray(a, dtype=np.float32))
    rng = np.random.default_rng(0)
    class Net(nn.Module):
        def __init__(s):
            super().__init__(); s.fc1 = nn.Linear(5, 8); s.fc2 = nn.Linear(8, 3)
        def forward(s, x): return s.fc2(F.relu(s.fc1(x)))
    model = Net()
    with torch.no_grad():
        for p in model.parameters(): p.copy_(from_np(rng.standard_normal(tuple(p.shape)) * 0.5))
    x = from_np(rng.standard_normal((6, 5))); y = torch.tensor(rng.integers(0, 3, 6))
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    def compute_loss(params, buffers, sample, target):
        batch = sample.unsqueeze(0); targets = target.unsqueeze(0)
        pred = torch.func.functional_call(model, (params, buffers), (batch,))
        return F.cross_entropy(pred, targets)
    per_sample = torch.func.vmap(torch.func.grad(compute_loss), in_dims=(None, None, 0, 0))(params, buffers, x, y)
    out = {k: v.detach().numpy() for k, v in per_sample.items()}
    # MAML-style inner step with functional_call, differentiated through
    p2 = {k: v - 0.1 * g for (k, v), g in zip(model.named_parameters(), torch.autograd.grad(
        F.cross_entropy(model(x), y), list(model.parameters()), create_graph=True))}
    outer = F.cross_entropy(torch.func.functional_call(model, p2, (x,)), y)
    outer.backward()
    out["maml"] = np.array([outer.item()])
    out["maml_grad"] = model.fc1.weight.grad.numpy().copy()
    # grad of grad, jacrev/jacfwd/hessian, vjp, jvp
    f = lambda a: (a.sin() * a).sum()
    a = from_np(rng.standard_normal(4))
    out["gg"] = torch.func.grad(lambda t: torch.func.grad(f)(t).sum())(a).numpy()
    out["jacrev"] = torch.func.jacrev(lambda t: t.exp() * t.sum())(a).numpy()
    out["jacfwd"] = torch.func.jacfwd(lambda t: t.exp() * t.sum())(a).numpy()
    out["hess"] = torch.func.hessian(f)(a).numpy()
    val, fn = torch.func.vjp(lambda t: t * 2 + t.exp(), a)
    out["vjp"] = fn(torch.ones_like(val))[0].numpy()
    out["jvp"] = torch.func.jvp(lambda t: t.exp(), (a,), (torch.ones_like(a),))[1].numpy()
    out["vmap2"] = torch.func.vmap(lambda u, v: (u * v).sum(), in_dims=(0, None))(x, x[0]).numpy()
    out["vmap_out1"] = torch.func.vmap(lambda u: u * 2, out_dims=1)(x).numpy()
    out["gv"] = torch.func.grad_and_value(f)(a)[1].numpy().reshape(1)
    return out


def test_transforms_match_pytorch():
    ours, theirs = _run(gradc), _run(torch)
    assert sorted(ours) == sorted(theirs)
    for k in theirs:
        np.testing.assert_allclose(ours[k], theirs[k], rtol=1e-4, atol=1e-6, err_msg=k)


def test_vmap_randomness_and_functional_call_leave_the_module_as_it_was():
    draw = lambda x: x + gradc.rand(())
    with pytest.raises(gradc.GradcError, match="randomness='different'"):
        gradc.func.vmap(draw)(gradc.zeros(3))
    different = gradc.func.vmap(draw, randomness="different")(gradc.zeros(3)).numpy()
    same = gradc.func.vmap(draw, randomness="same")(gradc.zeros(3)).numpy()
    assert len(set(different.tolist())) == 3 and len(set(same.tolist())) == 1
    lin = gradc.nn.Linear(2, 2)
    before = lin.weight
    out = gradc.func.functional_call(lin, {"weight": gradc.zeros(2, 2), "bias": gradc.ones(2)}, (gradc.ones(1, 2),))
    np.testing.assert_array_equal(out.numpy(), [[1.0, 1.0]])
    assert lin.weight is before
    with pytest.raises(gradc.GradcError, match="no parameter or buffer 'wieght'"):
        gradc.func.functional_call(lin, {"wieght": gradc.zeros(2, 2)}, (gradc.ones(1, 2),))


def test_has_aux_of_jacrev_jacfwd_and_jvp_as_pytorch():
    def run(lib):
        x = lib.tensor([1.0, 2.0])
        j, aux = lib.func.jacrev(lambda t: (t.exp(), t.sum()), has_aux=True)(x)
        j2, aux2 = lib.func.jacfwd(lambda t: (t.exp(), t.sum()), has_aux=True)(x)
        _, jv, aux3 = lib.func.jvp(lambda t: (t.sin(), t * 2), (x,), (lib.ones(2),), has_aux=True)
        return [r.detach().numpy() for r in (j, aux, j2, aux2, jv, aux3)]
    for ours, theirs in zip(run(gradc), run(torch)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
