"""The global random generator behind rand/randn/randint, dropout and parameter init."""
import numpy as np

_gen = [np.random.default_rng()]


def manual_seed(seed):
    """Seed every gradc random draw (like torch.manual_seed)."""
    _gen[0] = np.random.default_rng(int(seed))
    return _gen[0]


def generator():
    return _gen[0]


def get_rng_state():
    return _gen[0].bit_generator.state


def set_rng_state(state):
    _gen[0].bit_generator.state = state
