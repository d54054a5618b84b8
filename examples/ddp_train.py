"""Train the two-spirals MLP of train_mlp.py with DistributedDataParallel, one process per rank.

    mpiexec -n 2 python examples/ddp_train.py            # eager
    mpiexec -n 2 python examples/ddp_train.py --compile  # the whole training step compiled

Every rank holds the full dataset and shuffles it with the same seed; each global batch of 64 points
is split evenly between the ranks, and DDP averages the gradients, so N ranks train exactly the
model one process would train on the whole batch. Rank 0 prints the loss per epoch (averaged over
all ranks) and the accuracy on held-out points; the script exits non-zero if the ranks' parameters
differ at the end or the accuracy is below the threshold. `python examples/ddp_train.py` runs it as a
job of one rank."""
import argparse
import sys
import time

import numpy as np

import gradc
import gradc.distributed as dist
from gradc import nn, optim

THRESHOLD = 0.95      # required accuracy on the held-out points
EPOCHS = 30
BATCH = 64            # global batch, split between the ranks
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compile", action="store_true", help="compile the whole training step")
    args = parser.parse_args(argv)

    dist.init_process_group(backend="mpi")
    rank, world = dist.get_rank(), dist.get_world_size()
    if BATCH % world:
        raise SystemExit(f"the global batch of {BATCH} does not split evenly over {world} ranks")
    per_rank = BATCH // world

    x, y = spirals(1000, seed=SEED)
    x_train, y_train, x_test, y_test = x[:1600], y[:1600], x[1600:], y[1600:]
    if rank == 0:
        print(f"two spirals: {len(x_train)} training points, {len(x_test)} test points; {world} rank(s), "
              f"{per_rank} points per rank per step{', compiled step' if args.compile else ''}")

    gradc.manual_seed(SEED + rank)  # different on purpose: DDP starts every rank from rank 0's weights
    model = nn.parallel.DistributedDataParallel(
        nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2)))
    opt = optim.Adam(model.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()

    def step(xb, yb):
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()  # DDP averages the gradients across the ranks here
        opt.step()
        return loss

    train_step = gradc.compile(step) if args.compile else step
    rng = np.random.default_rng(SEED)  # the same shuffle on every rank
    start = time.perf_counter()
    for epoch in range(1, EPOCHS + 1):
        order = rng.permutation(len(x_train))
        total = gradc.zeros(())
        for i in range(0, len(order), BATCH):
            idx = order[i:i + BATCH][rank * per_rank:(rank + 1) * per_rank]
            loss = train_step(gradc.from_numpy(x_train[idx]), gradc.from_numpy(y_train[idx]))
            total += loss.detach() * len(idx)
        dist.all_reduce(total)
        if rank == 0:
            print(f"epoch {epoch:2d}  loss {total.item() / len(x_train):.4f}")
    elapsed = time.perf_counter() - start

    # every rank must hold the same model: compare with rank 0's copy
    mine = gradc.cat([p.detach().reshape(-1) for p in model.parameters()])
    theirs = mine.clone()
    dist.broadcast(theirs, src=0)
    spread = (mine - theirs).abs().amax()
    dist.all_reduce(spread, op="max")

    status = 0
    if rank == 0:
        model.eval()
        with gradc.no_grad():
            pred = model(gradc.from_numpy(x_test)).argmax(1).numpy()
        accuracy = float((pred == y_test).mean())
        same = spread.item() == 0.0
        print(f"parameters identical on all {world} rank(s): {same} (max difference {spread.item():.3g})")
        print(f"test accuracy: {accuracy:.3f} (threshold {THRESHOLD:.2f}); training took {elapsed:.1f} s")
        if not same:
            print("FAILED: the ranks ended with different parameters", file=sys.stderr)
            status = 1
        if accuracy < THRESHOLD:
            print(f"FAILED: test accuracy {accuracy:.3f} is below {THRESHOLD:.2f}", file=sys.stderr)
            status = 1
    dist.destroy_process_group()
    return status


if __name__ == "__main__":
    sys.exit(main())
