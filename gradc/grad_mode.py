"""Grad mode: whether ops record history for autograd (per thread, as in PyTorch)."""
import functools
import inspect
import threading

_state = threading.local()


def is_grad_enabled():
    return getattr(_state, "enabled", True)


def _set_enabled(flag):
    _state.enabled = flag


class _GradMode:
    """Context manager and decorator that sets grad mode, restoring the old mode on exit."""
    mode = True

    def __new__(cls, fn=None):
        # `@gradc.no_grad` without parentheses decorates fn directly (as in PyTorch)
        self = super().__new__(cls)
        return self if fn is None else self(fn)

    def __enter__(self):
        self._prev = is_grad_enabled()
        _set_enabled(self.mode)
        return self

    def __exit__(self, *exc):
        _set_enabled(self._prev)
        return False

    def __call__(self, fn):
        if inspect.isgeneratorfunction(fn):
            return self._wrap_generator(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self._fresh():
                return fn(*args, **kwargs)
        return wrapper

    def _wrap_generator(self, fn):
        """A decorated generator runs each of its steps inside the mode, as PyTorch's does."""
        @functools.wraps(fn)
        def generator(*args, **kwargs):
            gen = fn(*args, **kwargs)
            try:
                with self._fresh():
                    response = gen.send(None)
                while True:
                    try:
                        request = yield response
                    except GeneratorExit:
                        with self._fresh():
                            gen.close()
                        raise
                    except BaseException as e:
                        with self._fresh():
                            response = gen.throw(e)
                    else:
                        with self._fresh():
                            response = gen.send(request)
            except StopIteration as stop:
                return stop.value
        return generator

    def _fresh(self):
        """A new context manager for one call of a decorated function."""
        return type(self)()


class no_grad(_GradMode):
    """Disable history recording: results keep no reference to their inputs."""
    mode = False


class enable_grad(_GradMode):
    mode = True


class set_grad_enabled(_GradMode):
    def __new__(cls, mode):
        return object.__new__(cls)

    def __init__(self, mode):
        self.mode = bool(mode)
        self._prev = is_grad_enabled()
        _set_enabled(self.mode)  # like PyTorch, also works as a plain function call

    def __enter__(self):
        return self

    def __call__(self, fn):
        _set_enabled(self._prev)  # as a decorator the mode applies to each call, not from now on
        return super().__call__(fn)

    def _fresh(self):
        return set_grad_enabled(self.mode)
