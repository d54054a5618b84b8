"""Train a small MLP to separate two interleaved spirals, a dataset generated here with a fixed seed.

Prints the training loss per epoch and the accuracy on held-out points, and exits non-zero if the
test accuracy is below the threshold stated below. Runs in a few seconds on a laptop CPU."""
import sys
import time

import numpy as np

import gradc
from gradc import nn, optim

THRESHOLD = 0.95      # required accuracy on the held-out points
EPOCHS = 30
BATCH = 64
SEED = 0


def spirals(n_per_class, turns=1.5, noise=0.2, seed=0):
    """Two spirals, one per class, each `turns` revolutions long; Gaussian noise on the points."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0.0, 1.0, n_per_class)) * turns * 2 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (turns * 2 * np.pi) * 4
    x = np.concatenate([arm, -arm]) + rng.normal(0.0, noise, (2 * n_per_class, 2))
    y = np.concatenate([np.zeros(n_per_class), np.ones(n_per_class)]).astype(np.int64)
    order = rng.permutation(2 * n_per_class)
    return x[order].astype(np.float32), y[order]


def main():
    gradc.manual_seed(SEED)
    x, y = spirals(1000, seed=SEED)
    x_train, y_train, x_test, y_test = x[:1600], y[:1600], x[1600:], y[1600:]
    print(f"two spirals: {len(x_train)} training points, {len(x_test)} test points")

    model = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    opt = optim.Adam(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(SEED)

    start = time.perf_counter()
    for epoch in range(1, EPOCHS + 1):
        order = rng.permutation(len(x_train))
        total = 0.0
        for i in range(0, len(order), BATCH):
            idx = order[i:i + BATCH]
            xb, yb = gradc.from_numpy(x_train[idx]), gradc.from_numpy(y_train[idx])
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch:2d}  loss {total / len(x_train):.4f}")
    elapsed = time.perf_counter() - start

    model.eval()
    with gradc.no_grad():
        pred = model(gradc.from_numpy(x_test)).argmax(1).numpy()
    accuracy = float((pred == y_test).mean())
    print(f"test accuracy: {accuracy:.3f} (threshold {THRESHOLD:.2f}); training took {elapsed:.1f} s")
    if accuracy < THRESHOLD:
        print(f"FAILED: test accuracy {accuracy:.3f} is below {THRESHOLD:.2f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
