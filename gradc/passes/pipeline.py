"""The pass pipeline between tracing and code generation, in the order it runs."""
from .recompute import choose_saved
from .simplify import simplify


def optimize(graph):
    """Verify; simplify to a fixed point; choose what the forward keeps for the backward (min-cut,
    recomputing cheap values); verify again. Returns per-pass statistics."""
    graph.verify()
    before = len(graph)
    counts = simplify(graph)
    saved_before, saved_after = choose_saved(graph)
    graph.verify()
    return {"traced_nodes": before, "simplify": counts, "saved_activation_bytes": saved_after,
            "saved_activation_bytes_without_recompute": saved_before}
