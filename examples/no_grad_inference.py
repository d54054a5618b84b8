"""Inference under gradc.no_grad: results keep no history, so no graph is built and nothing is
held for a backward pass."""
import gradc
from gradc import nn

gradc.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
x = gradc.randn(3, 4)

out = model(x)
print(f"training mode: requires_grad={out.requires_grad}, grad_fn={out.grad_fn}")

model.eval()
with gradc.no_grad():
    pred = model(x)
print(f"under no_grad: requires_grad={pred.requires_grad}, grad_fn={pred.grad_fn}")
print(f"grad mode restored after the block: {gradc.is_grad_enabled()}")

assert out.requires_grad and out.grad_fn is not None
assert not pred.requires_grad and pred.grad_fn is None
assert gradc.is_grad_enabled()
# Same numbers either way: no_grad changes what is recorded, not what is computed.
assert (pred - out.detach()).abs().max().item() == 0.0
print("predictions:", pred.argmax(1).tolist())
