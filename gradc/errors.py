"""Named errors: every failure a user can cause raises one of these, with a message that says
what went wrong, where, and what to do instead."""


class GradcError(Exception):
    """Base class of every error gradc raises on purpose."""


class ShapeError(GradcError, ValueError, RuntimeError):
    """Operand shapes do not fit the op (the message names the op and the shapes): a ValueError,
    and a RuntimeError as PyTorch's are, so `except RuntimeError` written for torch catches it."""


class DTypeError(GradcError, TypeError, RuntimeError):
    """Operand dtypes do not fit the op: a TypeError, and a RuntimeError as PyTorch's mostly are."""


class ScalarError(ShapeError):
    """A tensor of several (or no) elements used as one number (item(), bool(), float())."""


class StateDictError(ShapeError):
    """A state dict that does not fit the module (missing or unexpected keys, a shape that
    differs): a ShapeError, and a RuntimeError as PyTorch's load_state_dict raises."""


class CastError(DTypeError):
    """A result whose dtype cannot be written into the tensor that must hold it (an in-place op on an
    integer tensor, out=): a DTypeError, and a RuntimeError as PyTorch's is."""


class ArgumentError(GradcError, ValueError):
    """An argument value refused where it is given (a DataLoader's batch_size, an optimizer's lr, a
    sampler's weights): a ValueError, as PyTorch's checks raise."""


class LoaderError(GradcError, RuntimeError):
    """A DataLoader worker died or timed out: a RuntimeError, as PyTorch's."""


class AutogradError(GradcError, RuntimeError):
    """Misuse of autograd: backward twice, non-scalar backward, a saved tensor changed in place."""


class TraceError(GradcError):
    """The function cannot be traced into a graph (e.g. a Python branch on a traced value)."""


class DeviceError(GradcError):
    """Unknown device, mixed devices, or a device that is not available here."""


class ArtifactError(GradcError):
    """A saved program is corrupt, tampered with, or from an incompatible version."""


class OutOfRangeError(GradcError, IndexError, RuntimeError):
    """An index or class label outside its valid range: an IndexError as indexing's in PyTorch, and
    a RuntimeError as gather's, embedding's and a loss's target check are."""


class DimensionError(ShapeError, OutOfRangeError):
    """A dim argument outside a tensor's dimensions: a ShapeError, and an IndexError as PyTorch's is."""


class OutOfMemoryError(GradcError, MemoryError):
    """An allocation larger than the memory available."""


class ConfigError(GradcError, ValueError):
    """A GRADC_* environment variable holds a value gradc does not accept."""


class ValueRangeError(GradcError, RuntimeError):
    """A tensor holds values the op does not accept (binary_cross_entropy's probabilities outside
    [0, 1], ...): PyTorch raises a RuntimeError there, and so does gradc, eagerly and compiled."""


class DistributionError(GradcError, ValueError):
    """A distribution's parameters or a value given to it are invalid (the message says which, and
    what was expected); a ValueError, as PyTorch's validation raises, eagerly and compiled."""


class LinAlgError(ValueRangeError):
    """A linear-algebra routine got a matrix it cannot handle (e.g. Cholesky of a matrix that is not
    positive definite); torch.linalg.LinAlgError's counterpart, also a RuntimeError."""
