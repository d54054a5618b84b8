"""Autograd on a linear layer: forward, mean-squared-error loss, backward, then read the gradients.

The gradients are checked against the closed form for y = x W^T + b and L = mean((y - t)^2):
dL/dy = 2 (y - t) / N, dL/dW = (dL/dy)^T x, dL/db = sum of dL/dy over the batch."""
import numpy as np

import gradc
from gradc import nn

gradc.manual_seed(0)

layer = nn.Linear(2, 3)              # weight: (3, 2), bias: (3,)
x = gradc.tensor([[1.0, 2.0], [3.0, 4.0], [-1.0, 0.5], [0.0, -2.0]])
target = gradc.tensor([[0.5, -1.0, 2.0], [1.0, 0.0, -1.0], [0.0, 0.0, 0.0], [2.0, 1.0, 0.5]])

loss = nn.MSELoss()(layer(x), target)
loss.backward()

print(f"loss: {loss.item():.6f}")
print("weight.grad (out_features x in_features):")
print(layer.weight.grad)
print("bias.grad:")
print(layer.bias.grad)

# The same gradients by hand, in float64.
W, b = layer.weight.detach().numpy().astype(np.float64), layer.bias.detach().numpy().astype(np.float64)
xs, ts = x.numpy().astype(np.float64), target.numpy().astype(np.float64)
dy = 2 * (xs @ W.T + b - ts) / ts.size
assert np.allclose(layer.weight.grad.numpy(), dy.T @ xs, atol=1e-5)
assert np.allclose(layer.bias.grad.numpy(), dy.sum(0), atol=1e-5)
print("gradients match the closed form")
