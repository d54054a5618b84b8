"""Op-database rows for the structural tensor functions (stacking, splitting, indexing, reductions, products): registered into opdb.ROWS, so gradcheck, eager vs compiled, PyTorch
parity and the CUDA host check iterate them like every other row."""
