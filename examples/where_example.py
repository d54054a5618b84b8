"""gradc.where instead of a Python branch: a piecewise function of a whole tensor, with gradients.

A Python `if x > 0:` looks at one value; gradc.where(condition, a, b) picks elementwise, keeps the
program free of data-dependent branches, and sends each element's gradient through the side it took."""
import gradc

x = gradc.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], requires_grad=True)

# Huber-like: quadratic near zero, linear outside.
small = x.abs() <= 1.0
y = gradc.where(small, 0.5 * x * x, x.abs() - 0.5)
y.sum().backward()

print("x:     ", x.detach().tolist())
print("y:     ", y.detach().tolist())
print("dy/dx: ", x.grad.tolist())

# Inside |x| <= 1 the derivative is x; outside it is sign(x).
expected = [-1.0, -0.5, 0.0, 0.5, 1.0]
assert x.grad.tolist() == expected, x.grad.tolist()
print("gradient is x inside [-1, 1] and sign(x) outside, as expected")
