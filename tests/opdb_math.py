"""Op-database rows for elementwise math primitives (trigonometric, hyperbolic, special functions, binary math): registered into opdb.ROWS, so gradcheck, eager vs compiled, PyTorch
parity and the CUDA host check iterate them like every other row."""
