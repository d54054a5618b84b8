"""Recurrent layers with PyTorch's parameter names, layouts, gate order and initialisation, so a
PyTorch state dict loads unchanged: weight_ih_l{k}[_reverse] (gates * hidden, input),
weight_hh_l{k}[_reverse] (gates * hidden, hidden or proj_size), bias_ih_l{k}, bias_hh_l{k},
weight_hr_l{k} (LSTM with proj_size), all drawn from U(-1/sqrt(hidden), 1/sqrt(hidden)).
Gate order: LSTM (i, f, g, o), GRU (r, z, n).

The time loop is Python over per-step tensor ops: eagerly it runs step by step, and under
gradc.compile it is unrolled into the graph, one copy of the cell per time step, so a compiled
program is specialised to the sequence length (a new length traces again). A PackedSequence runs
the same loop over its steps, each step on the rows still running (the batch sizes are numbers
known when packing, so a compiled program is specialised to them too)."""
import math

from ..errors import ShapeError
from ..functions import cat, empty, stack, zeros
from . import functional as F
from . import init
from .module import Module, Parameter
from .utils.rnn import PackedSequence

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _cell_step(mode, x_proj, h, c, w_hh, b_hh, w_hr=None):
    """One time step. x_proj = x @ w_ih.T + b_ih (with b_hh folded in, except for GRU, whose
    candidate gate multiplies the hidden part by r). Returns (h, c)."""
    hh = h @ w_hh.t()
    if mode == "GRU":
        if b_hh is not None:
            hh = hh + b_hh
        n_h = h.shape[-1]
        rz = (x_proj[..., :2 * n_h] + hh[..., :2 * n_h]).sigmoid()
        r, z = rz[..., :n_h], rz[..., n_h:]
        n = (x_proj[..., 2 * n_h:] + r * hh[..., 2 * n_h:]).tanh()
        return n + z * (h - n), None
    pre = x_proj + hh
    if mode == "RNN_TANH":
        return pre.tanh(), None
    if mode == "RNN_RELU":
        return pre.relu(), None
    n_c = c.shape[-1]
    gates = pre.sigmoid()  # i, f, o read from here; g is the tanh of its own slice
    i, f, o = gates[..., :n_c], gates[..., n_c:2 * n_c], gates[..., 3 * n_c:]
    g = pre[..., 2 * n_c:3 * n_c].tanh()
    c = f * c + i * g
    h = o * c.tanh()
    if w_hr is not None:
        h = h @ w_hr.t()
    return h, c


def _project(mode, x, w_ih, b_ih, b_hh):
    out = x @ w_ih.t()
    if b_ih is not None:
        out = out + b_ih
    if b_hh is not None and mode != "GRU":
        out = out + b_hh
    return out


class RNNBase(Module):
    """Shared machinery of RNN, LSTM and GRU (PyTorch's signature and defaults)."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        if not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError(f"{name}: dropout must be a number in [0, 1], got {dropout!r}")
        if hidden_size <= 0 or num_layers <= 0:
            raise ValueError(f"{name}: hidden_size ({hidden_size}) and num_layers ({num_layers}) must be positive")
        if proj_size < 0 or (proj_size and mode != "LSTM"):
            raise ValueError(f"{name}: proj_size must be 0, or positive for LSTM only, got {proj_size}")
        if proj_size >= hidden_size:
            raise ValueError(f"{name}: proj_size ({proj_size}) has to be smaller than hidden_size ({hidden_size})")
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        gate = _GATES[mode] * hidden_size
        real_h = proj_size or hidden_size
        dirs = 2 if bidirectional else 1
        for layer in range(num_layers):
            for d in range(dirs):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                n_in = input_size if layer == 0 else real_h * dirs
                self.register_parameter("weight_ih" + sfx, Parameter(empty(gate, n_in, dtype=dtype, device=device)))
                self.register_parameter("weight_hh" + sfx, Parameter(empty(gate, real_h, dtype=dtype, device=device)))
                if bias:
                    self.register_parameter("bias_ih" + sfx, Parameter(empty(gate, dtype=dtype, device=device)))
                    self.register_parameter("bias_hh" + sfx, Parameter(empty(gate, dtype=dtype, device=device)))
                if proj_size:
                    self.register_parameter("weight_hr" + sfx,
                                            Parameter(empty(proj_size, hidden_size, dtype=dtype, device=device)))
        self.reset_parameters()

    def reset_parameters(self):
        bound = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def flatten_parameters(self):
        """cuDNN packs an RNN's weights into one buffer; gradc reads them where they are: nothing to do."""

    def _weights(self, layer, d):
        sfx = f"_l{layer}" + ("_reverse" if d else "")
        def get(name):   # through getattr: a weight_norm'ed or parametrized weight is computed there
            return getattr(self, name, None)
        return (get("weight_ih" + sfx), get("weight_hh" + sfx), get("bias_ih" + sfx), get("bias_hh" + sfx),
                get("weight_hr" + sfx))

    def _initial(self, hx, batch, unbatched, x):
        dirs = 2 if self.bidirectional else 1
        real_h = self.proj_size or self.hidden_size
        want_h = (self.num_layers * dirs, batch, real_h)
        want_c = (self.num_layers * dirs, batch, self.hidden_size)
        if hx is None:
            h0 = zeros(want_h, dtype=x.dtype, device=x.device)
            return h0, (zeros(want_c, dtype=x.dtype, device=x.device) if self.mode == "LSTM" else None)
        if self.mode == "LSTM":
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise ShapeError(f"{type(self).__name__}: the initial state must be a tuple (h_0, c_0)")
            h0, c0 = hx
        else:
            h0, c0 = hx, None
        if unbatched:
            h0 = h0.unsqueeze(1)
            c0 = c0.unsqueeze(1) if c0 is not None else None
        for name, t, want in (("h_0", h0, want_h), ("c_0", c0, want_c)):
            if t is not None and tuple(t.shape) != want:
                shown = (want[0],) + want[2:] if unbatched else want
                got = (t.shape[0],) + t.shape[2:] if unbatched else tuple(t.shape)
                raise ShapeError(f"{type(self).__name__}: expected {name} of shape {shown}, got {got}")
        return h0, c0

    def forward(self, input, hx=None):
        if isinstance(input, PackedSequence):
            return self._forward_packed(input, hx)
        name = type(self).__name__
        if input.ndim not in (2, 3):
            raise ShapeError(f"{name}: expected a 3-D (batched) or 2-D (unbatched) input, got shape {tuple(input.shape)}")
        unbatched = input.ndim == 2
        x = input.unsqueeze(1) if unbatched else (input.transpose(0, 1) if self.batch_first else input)
        if x.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: input has {x.shape[-1]} features (shape {tuple(input.shape)}) but input_size is "
                             f"{self.input_size}")
        steps, batch = x.shape[0], x.shape[1]
        if steps == 0:
            raise ShapeError(f"{name}: expected a sequence length larger than 0, got input of shape "
                             f"{tuple(input.shape)}")
        h0, c0 = self._initial(hx, batch, unbatched, x)
        # Per-step inputs as a list: later layers take the previous layer's step outputs directly, so
        # only the user's input is ever sliced by time.
        seq, h_n, c_n = self._layers([x[t] for t in range(steps)], h0, c0, None)
        output = stack(seq, 1 if self.batch_first and not unbatched else 0)
        if unbatched:
            output, h_n = output.squeeze(1), h_n.squeeze(1)
            c_n = c_n.squeeze(1) if c_n is not None else None
        return output, ((h_n, c_n) if self.mode == "LSTM" else h_n)

    def _layers(self, seq, h0, c0, sizes):
        """Run every layer and direction over the per-step inputs `seq`; with `sizes` (a packed
        batch, longest first) step t updates only the first sizes[t] rows of the state, the rest
        keep their last state (forward) or their initial one until their last element (reverse).
        Returns (the last layer's per-step outputs, h_n, c_n)."""
        dirs, steps = (2 if self.bidirectional else 1), len(seq)
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for d in range(dirs):
                w_ih, w_hh, b_ih, b_hh, w_hr = self._weights(layer, d)
                k = layer * dirs + d
                h, c = h0[k], (c0[k] if c0 is not None else None)
                res = [None] * steps
                for t in (range(steps - 1, -1, -1) if d else range(steps)):
                    n = h.shape[0] if sizes is None else int(sizes[t])
                    if n == h.shape[0]:
                        h, c = _cell_step(self.mode, _project(self.mode, seq[t], w_ih, b_ih, b_hh), h, c, w_hh,
                                          b_hh, w_hr)
                        res[t] = h
                        continue
                    hn, cn = _cell_step(self.mode, _project(self.mode, seq[t], w_ih, b_ih, b_hh), h[:n],
                                        c[:n] if c is not None else None, w_hh, b_hh, w_hr)
                    res[t] = hn
                    h = cat([hn, h[n:]], 0)
                    c = cat([cn, c[n:]], 0) if c is not None else None
                outs.append(res)
                h_n.append(h)
                c_n.append(c)
            seq = outs[0] if dirs == 1 else [cat([a, b], -1) for a, b in zip(*outs)]
            if self.dropout and self.training and layer < self.num_layers - 1:
                seq = [F.dropout(s, self.dropout, True) for s in seq]
        return seq, stack(h_n, 0), (stack(c_n, 0) if self.mode == "LSTM" else None)

    def _forward_packed(self, packed, hx):
        """A PackedSequence in, a PackedSequence out (same batch_sizes and permutations), as PyTorch:
        hx and the returned states are in the batch's original order."""
        data, sizes = packed.data, packed._steps
        name = type(self).__name__
        if data.ndim != 2 or data.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: the packed data has shape {tuple(data.shape)}, expected (total length, "
                             f"{self.input_size})")
        batch = int(sizes[0])
        order = None if packed.sorted_indices is None else packed.sorted_indices.to(data.device)
        if hx is not None and order is not None:  # into the packed (sorted) order
            hx = (hx[0].index_select(1, order), hx[1].index_select(1, order)) if self.mode == "LSTM" \
                else hx.index_select(1, order)
        h0, c0 = self._initial(hx, batch, False, data)
        offsets = [0]
        for n in sizes:
            offsets.append(offsets[-1] + int(n))
        seq = [data[offsets[t]:offsets[t + 1]] for t in range(len(sizes))]
        seq, h_n, c_n = self._layers(seq, h0, c0, sizes)
        output = packed._with(cat(seq, 0))
        if packed.unsorted_indices is not None:  # back to the original order
            back = packed.unsorted_indices.to(data.device)
            h_n = h_n.index_select(1, back)
            c_n = c_n.index_select(1, back) if c_n is not None else None
        return output, ((h_n, c_n) if self.mode == "LSTM" else h_n)

    def extra_repr(self):
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = nonlinearity(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), tanh or relu.
    Compiled, the time loop is unrolled per sequence length."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, device=device, dtype=dtype)


class LSTM(RNNBase):
    """Long short-term memory, gates (i, f, g, o); returns (output, (h_n, c_n)). proj_size > 0
    projects each hidden state by weight_hr. Compiled, the time loop is unrolled per sequence length."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device=device, dtype=dtype)


class GRU(RNNBase):
    """Gated recurrent unit, gates (r, z, n) with n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
    Compiled, the time loop is unrolled per sequence length."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)


class RNNCellBase(Module):
    def __init__(self, mode, input_size, hidden_size, bias, device=None, dtype=None):
        super().__init__()
        self.mode, self.input_size, self.hidden_size, self.bias = mode, input_size, hidden_size, bias
        gate = _GATES[mode] * hidden_size
        self.weight_ih = Parameter(empty(gate, input_size, dtype=dtype, device=device))
        self.weight_hh = Parameter(empty(gate, hidden_size, dtype=dtype, device=device))
        if bias:
            self.bias_ih = Parameter(empty(gate, dtype=dtype, device=device))
            self.bias_hh = Parameter(empty(gate, dtype=dtype, device=device))
        else:
            self.bias_ih = self.bias_hh = None
        self.reset_parameters()

    reset_parameters = RNNBase.reset_parameters

    def _step(self, input, hx):
        name = type(self).__name__
        if input.ndim not in (1, 2):
            raise ShapeError(f"{name}: expected a 2-D (batched) or 1-D (unbatched) input, got shape {tuple(input.shape)}")
        if input.shape[-1] != self.input_size:
            raise ShapeError(f"{name}: input has {input.shape[-1]} features but input_size is {self.input_size}")
        unbatched = input.ndim == 1
        x = input.unsqueeze(0) if unbatched else input
        state = hx if self.mode == "LSTM" else (hx, None)
        if hx is None:
            z = zeros(x.shape[0], self.hidden_size, dtype=x.dtype, device=x.device)
            h, c = z, (z if self.mode == "LSTM" else None)
        else:
            h, c = state
            h = h.unsqueeze(0) if unbatched else h
            c = c.unsqueeze(0) if unbatched and c is not None else c
            if tuple(h.shape) != (x.shape[0], self.hidden_size):
                raise ShapeError(f"{name}: hidden state has shape {tuple(h.shape)}, expected "
                                 f"{(x.shape[0], self.hidden_size)}")
        h, c = _cell_step(self.mode, _project(self.mode, x, self.weight_ih, self.bias_ih, self.bias_hh), h, c,
                          self.weight_hh, self.bias_hh)
        if unbatched:
            h, c = h.squeeze(0), (c.squeeze(0) if c is not None else None)
        return (h, c) if self.mode == "LSTM" else h

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False") + (
            f", nonlinearity={self.nonlinearity}" if getattr(self, "nonlinearity", "tanh") != "tanh" else "")


class RNNCell(RNNCellBase):
    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, bias,
                         device, dtype)

    def forward(self, input, hx=None):
        return self._step(input, hx)


class LSTMCell(RNNCellBase):
    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, bias, device, dtype)

    def forward(self, input, hx=None):
        """Returns (h_1, c_1)."""
        return self._step(input, hx)


class GRUCell(RNNCellBase):
    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, bias, device, dtype)

    def forward(self, input, hx=None):
        return self._step(input, hx)
