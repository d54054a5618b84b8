"""torch._inductor.config, for the setup lines of scripts that tune Inductor
(`torch._inductor.config.coordinate_descent_tuning = True`, `config.triton.unique_kernel_names`):
gradc has no Inductor, so each setting is kept with a warning that it changes nothing. The
CUDA-graph choice, which gradc does make, is gradc.compile's mode= (or GRADC_CUDA_GRAPHS)."""
import warnings

_NAMESPACES = ("triton", "cpp", "cuda", "aot_inductor")


class _Settings:
    def __init__(self, path):
        object.__setattr__(self, "_path", path)
        object.__setattr__(self, "_values", {})

    def __getattr__(self, name):
        values = self.__dict__["_values"]
        if name not in values and self._path == "config" and name in _NAMESPACES:
            values[name] = _Settings(f"config.{name}")
        if name not in values:
            raise AttributeError(f"gradc._inductor.{self._path}.{name} was never set (gradc has no Inductor)")
        return values[name]

    def __setattr__(self, name, value):
        warnings.warn(f"gradc._inductor.{self._path}.{name} changes nothing: gradc has no Inductor (its CUDA "
                      "graphs follow gradc.compile's mode=)", stacklevel=2)
        self._values[name] = value


config = _Settings("config")
