"""L-BFGS (PyTorch's algorithm: two-loop recursion over the last `history_size` curvature pairs,
a fixed step or a strong-Wolfe line search with cubic interpolation; state on the first parameter,
with torch's names). One step calls the closure many times and stops on the values it returns, so
a step runs eagerly: compile the closure (`opt.step(gradc.compile(closure))`), not the step. Called
while a step is traced, it raises TraceError before touching any state, so the compiled function
falls back to running eagerly with that reason."""
from .. import dispatch
from ..grad_mode import enable_grad, no_grad
from ..errors import ArgumentError, ShapeError, TraceError
from ..functions import cat, zeros
from ..tensor import Tensor
from .optimizer import Optimizer


def _dot(a, b):
    return (a * b).sum()


def cubic_minimum(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimiser of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to `bounds`
    (default: the interval the points span); the middle of the bounds when the cubic has none."""
    lo, hi = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square >= 0:
        d2 = d2_square ** 0.5
        if x1 <= x2:
            at = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            at = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(at, lo), hi)
    return (lo + hi) / 2.0


def strong_wolfe(evaluate, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """Line search along d from x for a step t meeting the strong Wolfe conditions: bracket, then
    zoom. evaluate(x, t, d) -> (loss, flat gradient). Returns (loss, gradient, t, evaluations)."""
    d_norm = float(d.abs().max())
    g = g.clone()
    f_new, g_new = evaluate(x, t, d)
    evals, ls_iter = 1, 0
    gtd_new = _dot(g_new, d)
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    bracket = None
    while ls_iter < max_ls:
        sufficient = not (f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev))
        if sufficient and abs(gtd_new) <= -c2 * gtd:
            bracket, bf, bg, done = [t], [f_new], [g_new], True
            break
        if not sufficient or gtd_new >= 0:
            bracket, bf, bg, bgtd = [t_prev, t], [f_prev, f_new], [g_prev, g_new.clone()], [gtd_prev, gtd_new]
            break
        lo, hi = t + 0.01 * (t - t_prev), t * 10
        t_prev, t = t, cubic_minimum(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(lo, hi))
        f_prev, g_prev, gtd_prev = f_new, g_new.clone(), gtd_new
        f_new, g_new = evaluate(x, t, d)
        evals += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, bf, bg = [0, t], [f, f_new], [g, g_new]
    insufficient = False
    low, high = (0, 1) if bf[0] <= bf[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = cubic_minimum(bracket[0], bf[0], bgtd[0], bracket[1], bf[1], bgtd[1])
        top, bottom = max(bracket), min(bracket)
        eps = 0.1 * (top - bottom)
        if min(top - t, t - bottom) < eps:   # too close to an end: move in, unless that was done last time
            if insufficient or t >= top or t <= bottom:
                t = top - eps if abs(t - top) < abs(t - bottom) else bottom + eps
                insufficient = False
            else:
                insufficient = True
        else:
            insufficient = False
        f_new, g_new = evaluate(x, t, d)
        evals += 1
        gtd_new = _dot(g_new, d)
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bf[low]:
            bracket[high], bf[high], bg[high], bgtd[high] = t, f_new, g_new.clone(), gtd_new
            low, high = (0, 1) if bf[0] <= bf[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high] - bracket[low]) >= 0:
                bracket[high], bf[high], bg[high], bgtd[high] = bracket[low], bf[low], bg[low], bgtd[low]
            bracket[low], bf[low], bg[low], bgtd[low] = t, f_new, g_new.clone(), gtd_new
    return bf[low], bg[low], bracket[low], evals


class LBFGS(Optimizer):
    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9,
                 history_size=100, line_search_fn=None):
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        if line_search_fn not in (None, "strong_wolfe"):
            raise ArgumentError(f"LBFGS: line_search_fn={line_search_fn!r} is not supported; pass None (a fixed step "
                                "of lr) or 'strong_wolfe'")
        if not (lr > 0 and max_iter >= 1 and history_size >= 1):
            raise ArgumentError(f"LBFGS: need lr > 0, max_iter >= 1 and history_size >= 1 (got lr={lr}, "
                                f"max_iter={max_iter}, history_size={history_size})")
        super().__init__(params, dict(lr=lr, max_iter=max_iter, max_eval=max_eval, tolerance_grad=tolerance_grad,
                                      tolerance_change=tolerance_change, history_size=history_size,
                                      line_search_fn=line_search_fn))
        if len(self.param_groups) != 1:
            raise ArgumentError("LBFGS doesn't support per-parameter options (parameter groups); pass one list of "
                                "parameters")
        self._params = self.param_groups[0]["params"]

    def add_param_group(self, group):
        if getattr(self, "_params", None) is not None:
            raise ArgumentError("LBFGS doesn't support per-parameter options (parameter groups)")
        super().add_param_group(group)

    def state_dict(self):
        out = super().state_dict()
        for st in out["state"].values():   # the curvature history: lists of tensors, copied too
            for k, v in st.items():
                if isinstance(v, list):
                    st[k] = [x.clone() if isinstance(x, Tensor) else x for x in v]
        return out

    def load_state_dict(self, state_dict):
        """The state lives on the first parameter and holds flat vectors over all of them (the
        direction, the last gradient, the curvature pairs): their length is checked, not a shape."""
        groups = state_dict["param_groups"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(self._params):
            raise ArgumentError("LBFGS.load_state_dict: the saved optimizer has a different number of parameters "
                                "than this one; build it over the same parameters")
        n = sum(p.numel() for p in self._params)
        first = self._params[0]

        def own(v, key):
            if isinstance(v, list):
                return [own(x, key) for x in v]
            if not isinstance(v, Tensor):
                return v
            if v.ndim == 1 and v.shape[0] != n:
                raise ShapeError(f"LBFGS.load_state_dict: state '{key}' has {v.shape[0]} entries, but the "
                                 f"parameters have {n} in all")
            v = v.clone().to(first.device)
            return v.to(first.dtype) if v.dtype.is_floating_point and first.dtype.is_floating_point else v
        saved = state_dict["state"].get(groups[0]["params"][0], {})
        self.state = {first: {k: own(v, k) for k, v in saved.items()}} if saved else {}
        self.param_groups[0].update({k: v for k, v in groups[0].items() if k != "params"})

    def _update(self, p, grad, state, group):   # (step() does the whole iteration itself)
        raise ArgumentError("LBFGS updates all its parameters together in step(closure)")

    def _flat_grad(self):
        return cat([zeros(p.numel(), dtype=p.dtype, device=p.device) if p.grad is None else p.grad.reshape(-1)
                    for p in self._params])

    def _add(self, t, d):
        off = 0
        for p in self._params:
            n = p.numel()
            p.add_(d[off:off + n].reshape(p.shape) * t)
            off += n

    def _evaluate(self, closure, x, t, d):
        self._add(t, d)
        loss = float(self._closure(closure))
        g = self._flat_grad()
        for p, v in zip(self._params, x):
            p.copy_(v)
        return loss, g

    def step(self, closure=None):
        if closure is None:
            raise ArgumentError("LBFGS.step needs a closure that clears the gradients, computes the loss, calls "
                                "backward() and returns the loss: opt.step(closure)")
        if dispatch.tracer() is not None:
            raise TraceError("LBFGS.step(closure) is called inside the compiled function: it calls the closure "
                             "many times and stops on the values it returns, which a compiled program cannot "
                             "replay. Call opt.step(closure) eagerly and compile the closure instead: "
                             "opt.step(gradc.compile(closure))")
        with no_grad():
            return self._step(closure)

    def _closure(self, closure):
        with enable_grad():
            return closure()

    def _step(self, closure):
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tol_grad, tol_change, history = group["tolerance_grad"], group["tolerance_change"], group["history_size"]
        state = self.state.setdefault(self._params[0], {})
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        orig_loss = self._closure(closure)
        loss, evals = float(orig_loss), 1
        state["func_evals"] += 1
        g = self._flat_grad()
        if g.abs().max() <= tol_grad:
            return orig_loss
        d, t, dirs, stps, ro, h_diag, prev_g, prev_loss = (state.get(k) for k in (
            "d", "t", "old_dirs", "old_stps", "ro", "H_diag", "prev_flat_grad", "prev_loss"))
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d, dirs, stps, ro, h_diag = -g, [], [], [], 1
            else:
                y, s = g - prev_g, d * t
                ys = _dot(y, s)
                if ys > 1e-10:   # a curvature pair that keeps the approximation positive definite
                    if len(dirs) == history:
                        dirs.pop(0), stps.pop(0), ro.pop(0)
                    dirs.append(y), stps.append(s), ro.append(1.0 / ys)
                    h_diag = ys / _dot(y, y)
                al = state.setdefault("al", [None] * history)
                q = -g
                for i in range(len(dirs) - 1, -1, -1):
                    al[i] = _dot(stps[i], q) * ro[i]
                    q = q - dirs[i] * al[i]
                d = r = q * h_diag
                for i in range(len(dirs)):
                    be_i = _dot(dirs[i], r) * ro[i]
                    r = r + stps[i] * (al[i] - be_i)
                d = r
            prev_g = g.clone()
            prev_loss = loss
            t = min(1.0, 1.0 / g.abs().sum()) * lr if state["n_iter"] == 1 else lr
            gtd = _dot(g, d)
            if gtd > -tol_change:   # not a descent direction
                break
            ls_evals = 0
            if group["line_search_fn"] == "strong_wolfe":
                x = [p.clone() for p in self._params]

                def evaluate(x, t, d):
                    return self._evaluate(closure, x, t, d)
                loss, g, t, ls_evals = strong_wolfe(evaluate, x, t, d, loss, g, gtd, max_ls=max_eval - evals)
                self._add(t, d)
                converged = g.abs().max() <= tol_grad
            else:
                self._add(t, d)
                converged = False
                if n_iter != max_iter:
                    loss = float(self._closure(closure))
                    g = self._flat_grad()
                    converged = g.abs().max() <= tol_grad
                    ls_evals = 1
            evals += ls_evals
            state["func_evals"] += ls_evals
            if n_iter == max_iter or evals >= max_eval or converged:
                break
            if (d * t).abs().max() <= tol_change or abs(loss - prev_loss) < tol_change:
                break
        state.update(d=d, t=t, old_dirs=dirs, old_stps=stps, ro=ro, H_diag=h_diag, prev_flat_grad=prev_g,
                     prev_loss=prev_loss)
        return orig_loss
