"""Loading and running generated programs: the on-disk module cache, the Program object, its
bindings, compiled-forward/eager-backward and artifacts. Nothing here imports the compiler, the
tracer, the passes or the code generators; an artifact regenerates its code through the pipeline
function it is handed (gradc.lower.lower)."""
