"""The base of the families given exactly one of probs or logits of a binary outcome (Bernoulli,
Geometric, Binomial): the one given is stored, the other derived on first use, as in PyTorch."""
from .distribution import Distribution
from .utils import DistributionError, broadcast_all, lazy_property, logits_to_probs, probs_to_logits


def one_of(who, probs, logits):
    """Raise unless exactly one of probs and logits is given."""
    if (probs is None) == (logits is None):
        raise DistributionError(f"{who}: give exactly one of probs or logits (got "
                                f"{'both' if probs is not None else 'neither'})")


class BinaryProbsOrLogits(Distribution):
    """Exactly one of probs or logits (of success), broadcast with any other parameters; the other
    is derived with the binary (sigmoid) link."""

    def _set_param(self, who, probs, logits, *others):
        one_of(who, probs, logits)
        out = broadcast_all(probs if probs is not None else logits, *others)
        self.__dict__["probs" if probs is not None else "logits"] = out[0]
        return out

    @property
    def _param(self):
        return self.__dict__["probs"] if "probs" in self.__dict__ else self.__dict__["logits"]

    @lazy_property
    def logits(self):
        return probs_to_logits(self.probs, is_binary=True)

    @lazy_property
    def probs(self):
        return logits_to_probs(self.logits, is_binary=True)
