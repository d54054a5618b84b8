"""The pass pipeline between tracing and code generation, in the order it runs."""
from .simplify import simplify


def optimize(graph):
    """Verify, simplify to a fixed point, verify again. Returns per-pass statistics."""
    graph.verify()
    before = len(graph)
    counts = simplify(graph)
    graph.verify()
    return {"traced_nodes": before, "simplify": counts}
