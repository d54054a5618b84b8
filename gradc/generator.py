"""gradc.Generator: a random-number generator object, as torch.Generator, for the places that take
`generator=` (samplers, random_split, DataLoader). `gradc.default_generator` is the global one
behind gradc.manual_seed, rand/randn and dropout."""
import numpy as np

from . import random as _random
from .device import device as _device
from .errors import GradcError


def _seed_value(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise GradcError(f"a seed must be an int, got {type(seed).__name__}")
    seed = int(seed)
    if not -(1 << 63) <= seed < (1 << 64):
        raise GradcError(f"seed {seed} is out of range; use a value in [-2**63, 2**64)")
    return seed % (1 << 64)  # negative seeds wrap, as in torch


class Generator:
    """Holds its own random state. `numpy_generator` is the NumPy Generator it draws from."""

    def __init__(self, device="cpu"):
        self.device = _device(device)
        self._initial = int(np.random.SeedSequence().entropy % (1 << 64))
        self.numpy_generator = np.random.default_rng(self._initial)

    def manual_seed(self, seed):
        self._initial = _seed_value(seed)
        self.numpy_generator = np.random.default_rng(self._initial)
        return self

    def seed(self):
        """Re-seed from fresh entropy; returns the new seed."""
        self.manual_seed(int(np.random.SeedSequence().entropy % (1 << 64)))
        return self._initial

    def initial_seed(self):
        return self._initial

    def get_state(self):
        return self.numpy_generator.bit_generator.state

    def set_state(self, state):
        self.numpy_generator.bit_generator.state = state
        return self

    def __repr__(self):
        return f"gradc.Generator(device='{self.device}')"


class _DefaultGenerator(Generator):
    """The global generator: every call reads gradc's current global state (gradc.manual_seed
    replaces it), so holding this object never goes stale."""

    def __init__(self):
        self.device = _device("cpu")

    @property
    def numpy_generator(self):
        return _random.generator()

    def manual_seed(self, seed):
        _random.manual_seed(_seed_value(seed))
        return self

    def seed(self):
        return _random.seed()

    def initial_seed(self):
        return _random.initial_seed()

    def get_state(self):
        return _random.get_rng_state()

    def set_state(self, state):
        _random.set_rng_state(state)
        return self


default_generator = _DefaultGenerator()


def manual_seed(seed):
    """Seed every gradc random draw and return the default generator (torch.manual_seed)."""
    _random.manual_seed(seed)
    return default_generator
