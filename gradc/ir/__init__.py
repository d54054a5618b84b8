"""The intermediate representation the compiler's passes transform."""
from .graph import Graph, FORMAT_VERSION  # noqa: F401
