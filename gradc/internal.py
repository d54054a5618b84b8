"""gradc's own machinery, run without the read-recording hook.

While a call is traced, gradc.guards.Reads sets a trace function to see which of the user's code
objects run. In CPython 3.11 any trace function sends every instruction of every frame down the
interpreter's slow path, which made a trace take twice as long. The parts of gradc that never run
the user's code (recording a primitive, differentiating the graph, a built-in optimizer's update)
switch it off while they run: the hook would have nothing to record there."""
import functools
import sys


def internal(fn):
    """Decorate a function that never calls back into the user's code (no hooks, no user objects'
    methods): while a call is traced, it runs with the read-recording hook off."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        hook = sys.gettrace()
        if hook is None or not getattr(hook, "records_reads", False):
            return fn(*args, **kwargs)
        sys.settrace(None)
        try:
            return fn(*args, **kwargs)
        finally:
            sys.settrace(hook)
    return run
