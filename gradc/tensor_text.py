"""How a tensor prints: PyTorch's text, rule for rule (torch._tensor_str), under the options of
gradc.set_printoptions. One formatter for the whole tensor (its width from the finite, non-zero
values shown; whole numbers as `1.`; scientific when the magnitudes span more than 1000x, pass
1e8 or fall under 1e-4), rows wrapped by element count, large tensors summarised with `...`, and
the suffixes (device, size, dtype, grad_fn) moved to their own line when the last one is full."""
import math

import numpy as np

from .options import PRINT


class _Formatter:
    def __init__(self, values):
        self.floating = values.dtype.kind == "f"
        self.int_mode, self.sci_mode, self.max_width = True, False, 1
        p = PRINT["precision"]
        if not self.floating:
            self.max_width = max([1] + [len(str(v)) for v in values.reshape(-1).tolist()])
            return
        flat = values.reshape(-1).astype(np.float64)
        shown = flat[np.isfinite(flat) & (flat != 0)]
        if shown.size == 0:
            return
        low, high = float(np.abs(shown).min()), float(np.abs(shown).max())
        self.int_mode = bool(np.all(shown == np.ceil(shown)))
        auto = high / low > 1000.0 or high > 1.0e8 or low < 1.0e-4
        self.sci_mode = auto if PRINT["sci_mode"] is None else PRINT["sci_mode"]
        values = shown.tolist()
        if self.sci_mode:
            self.max_width = max(len(f"{v:.{p}e}") for v in values)
        elif self.int_mode:
            self.max_width = max(len(f"{v:.0f}") + 1 for v in values)
        else:
            self.max_width = max(len(f"{v:.{p}f}") for v in values)

    def format(self, value):
        p = PRINT["precision"]
        if not self.floating:
            text = f"{value}"
        elif self.sci_mode:
            text = f"{value:{self.max_width}.{p}e}"
        elif self.int_mode:
            text = f"{value:.0f}" + ("" if math.isinf(value) or math.isnan(value) else ".")
        else:
            text = f"{value:.{p}f}"
        return " " * (self.max_width - len(text)) + text


def _summarized(data):
    """The values a summarised print shows (what its formatter is sized by)."""
    edge = PRINT["edgeitems"]
    if data.ndim == 0:
        return data
    if data.ndim == 1:
        return np.concatenate([data[:edge], data[-edge:]]) if data.shape[0] > 2 * edge else data
    if not edge:
        return data[(slice(0, 0),) * data.ndim]
    rows = list(range(edge)) + list(range(data.shape[0] - edge, data.shape[0])) if data.shape[0] > 2 * edge \
        else range(data.shape[0])
    return np.stack([_summarized(data[i]) for i in rows])


def _vector(data, indent, summarize, fmt):
    per_line = max(1, math.floor((PRINT["linewidth"] - indent) / (fmt.max_width + 2)))
    edge = PRINT["edgeitems"]
    if summarize and not edge:
        items = ["..."]
    elif summarize and data.shape[0] > 2 * edge:
        items = [fmt.format(v) for v in data[:edge].tolist()] + [" ..."] + \
            [fmt.format(v) for v in data[-edge:].tolist()]
    else:
        items = [fmt.format(v) for v in data.tolist()]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return "[" + (",\n" + " " * (indent + 1)).join(lines) + "]"


def _nested(data, indent, summarize, fmt):
    if data.ndim == 0:
        return fmt.format(data.item())
    if data.ndim == 1:
        return _vector(data, indent, summarize, fmt)
    edge = PRINT["edgeitems"]
    n = data.shape[0]
    if summarize and n > 2 * edge:
        parts = [_nested(data[i], indent + 1, summarize, fmt) for i in range(edge)] + ["..."] + \
            [_nested(data[i], indent + 1, summarize, fmt) for i in range(n - edge, n)]
    else:
        parts = [_nested(data[i], indent + 1, summarize, fmt) for i in range(n)]
    return "[" + ("," + "\n" * (data.ndim - 1) + " " * (indent + 1)).join(parts) + "]"


def values_text(data, indent):
    """The bracketed values of an array, as PyTorch prints them after a prefix `indent` wide."""
    if data.size == 0:
        return "[]"
    summarize = data.size > PRINT["threshold"]
    return _nested(data, indent, summarize, _Formatter(_summarized(data) if summarize else data))


def with_suffixes(text, suffixes, indent):
    """text + ", suffix" each, a suffix starting a new line when the last line would pass the width."""
    out, last = [text], len(text) - text.rfind("\n") + 1
    for suffix in suffixes:
        if last + len(suffix) + 2 > PRINT["linewidth"]:
            out.append(",\n" + " " * indent + suffix)
            last = indent + len(suffix)
        else:
            out.append(", " + suffix)
            last += len(suffix) + 2
    return "".join(out) + ")"
