"""Train a small CNN (Conv2d, BatchNorm2d, MaxPool2d) to tell which of four shapes a noisy 12x12
image shows: a horizontal bar, a vertical bar, a diagonal or a square outline, drawn at random
positions with a fixed seed. The whole training step (forward, backward, SGD update, BatchNorm's
running statistics) is compiled with gradc.compile; evaluation runs the model in eval mode.

Prints the loss per epoch and the held-out accuracy, and exits non-zero if the accuracy is below
the threshold stated below. Runs in a few seconds on a laptop CPU."""
import sys

import numpy as np

import gradc
import gradc.nn.functional as F
from gradc import nn, optim

THRESHOLD = 0.9
EPOCHS = 5
BATCH = 32
SEED = 0


def shapes(n, size=12, noise=0.4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, noise, (n, 1, size, size)).astype(np.float32)
    y = rng.integers(0, 4, n)
    for img, label in zip(x, y):
        r, c = rng.integers(2, size - 6, 2)
        if label == 0:
            img[0, r, c:c + 5] += 1.0
        elif label == 1:
            img[0, r:r + 5, c] += 1.0
        elif label == 2:
            img[0, np.arange(r, r + 5), np.arange(c, c + 5)] += 1.0
        else:
            img[0, r, c:c + 4] += 1.0
            img[0, r + 3, c:c + 4] += 1.0
            img[0, r:r + 4, c] += 1.0
            img[0, r:r + 4, c + 3] += 1.0
    return x, y.astype(np.int64)


def main():
    gradc.manual_seed(SEED)
    x, y = shapes(1200, seed=SEED)
    x_train, y_train, x_test, y_test = x[:960], y[:960], x[960:], y[960:]
    print(f"four shapes: {len(x_train)} training images, {len(x_test)} test images, 1x12x12")
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(16 * 3 * 3, 4))
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

    @gradc.compile
    def train_step(xb, yb):
        opt.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    rng = np.random.default_rng(SEED)
    for epoch in range(1, EPOCHS + 1):
        order = rng.permutation(len(x_train))
        total = 0.0
        for i in range(0, len(order) - BATCH + 1, BATCH):  # full batches: one compiled signature
            idx = order[i:i + BATCH]
            total += train_step(gradc.from_numpy(x_train[idx]), gradc.from_numpy(y_train[idx])).item()
        print(f"epoch {epoch:2d}  loss {total / (len(order) // BATCH):.4f}")
    print(f"compiled training step: traced {train_step.trace_count} time(s)")

    model.eval()
    with gradc.no_grad():
        pred = model(gradc.from_numpy(x_test)).argmax(1).numpy()
    accuracy = float((pred == y_test).mean())
    print(f"test accuracy: {accuracy:.3f} (threshold {THRESHOLD})")
    print(f"BatchNorm running mean of the first layer: {np.round(model[1].running_mean.numpy().astype(float), 3).tolist()}")
    if accuracy < THRESHOLD:
        sys.exit(1)


if __name__ == "__main__":
    main()
