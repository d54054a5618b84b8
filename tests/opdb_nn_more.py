"""Op-database rows for the losses, layers and sampling functions of nn beyond the vision and sequence layers: registered into opdb.ROWS, so gradcheck, eager vs compiled, PyTorch
parity and the CUDA host check iterate them like every other row."""
