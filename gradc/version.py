"""The package version, in a leaf module: generated-code headers and artifact manifests read it
without importing the package (whose __init__ imports everything else)."""
__version__ = "0.1.0"
