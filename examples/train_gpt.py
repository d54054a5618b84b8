"""Train a tiny GPT (two transformer blocks, causal self-attention) on a short bundled text, one
character per token, with the whole training step compiled: forward, backward, gradient clipping
and AdamW with a warmup + cosine schedule run as one program.

Prints the loss as it goes down and a greedy sample, and exits non-zero if the final loss is not
below half the first. Runs in well under a minute on a laptop CPU."""
import math
import sys

import numpy as np

import gradc
import gradc.nn.functional as F
from gradc import nn

TEXT = ("to be, or not to be, that is the question: whether 'tis nobler in the mind to suffer "
        "the slings and arrows of outrageous fortune, or to take arms against a sea of troubles "
        "and by opposing end them. to die, to sleep; no more; and by a sleep to say we end the "
        "heart-ache and the thousand natural shocks that flesh is heir to. ")
STEPS, BATCH, BLOCK, EMBD, HEADS, LAYERS = 300, 16, 32, 48, 4, 2
SEED = 0


class Block(nn.Module):
    def __init__(self, n_embd, n_head, block_size):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))
        self.n_head = n_head
        self.register_buffer("mask", gradc.tril(gradc.ones(block_size, block_size)).view(1, 1, block_size, block_size))

    def attention(self, x):
        B, T, C = x.shape
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for t in self.c_attn(x).split(C, dim=2))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.shape[-1]))
        att = F.softmax(att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf")), dim=-1)
        return self.c_proj((att @ v).transpose(1, 2).reshape(B, T, C))

    def forward(self, x):
        x = x + self.attention(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab_size, EMBD), nn.Embedding(BLOCK, EMBD)
        self.blocks = nn.ModuleList([Block(EMBD, HEADS, BLOCK) for _ in range(LAYERS)])
        self.ln_f = nn.LayerNorm(EMBD)
        self.lm_head = nn.Linear(EMBD, vocab_size, bias=False)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(gradc.arange(idx.shape[1]).unsqueeze(0))
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))

    @gradc.no_grad()
    def generate(self, idx, n):
        for _ in range(n):
            logits = self(idx[:, -BLOCK:])[:, -1, :]
            _, nxt = gradc.topk(logits, k=1, dim=-1)
            idx = gradc.cat((idx, nxt), dim=1)
        return idx


def main():
    gradc.manual_seed(SEED)
    chars = sorted(set(TEXT))
    stoi = {c: i for i, c in enumerate(chars)}
    data = np.array([stoi[c] for c in TEXT], dtype=np.int64)
    model = GPT(len(chars))
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "wte" not in n and "wpe" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "wte" not in n and "wpe" not in n)]
    # the scheduled lr is an input of the compiled program: a new rate does not retrace
    opt = gradc.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=3e-3, betas=(0.9, 0.95))
    warmup = 20
    sched = gradc.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / (STEPS - warmup))))

    @gradc.compile
    def train_step(x, y):
        logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    print(f"{len(TEXT)} characters, vocabulary {len(chars)}; "
          f"{sum(p.numel() for p in model.parameters())} parameters")
    rng = np.random.default_rng(SEED)
    losses = []
    for step in range(STEPS):
        starts = rng.integers(0, len(data) - BLOCK - 1, BATCH)
        x = gradc.from_numpy(np.stack([data[s:s + BLOCK] for s in starts]))
        y = gradc.from_numpy(np.stack([data[s + 1:s + BLOCK + 1] for s in starts]))
        losses.append(train_step(x, y).item())
        sched.step()
        if step % 50 == 0 or step == STEPS - 1:
            print(f"step {step:3d}  loss {losses[-1]:.4f}")
    print(f"compiled training step: traced {train_step.trace_count} time(s)")
    model.eval()
    prompt = gradc.tensor([[stoi[c] for c in "to be"]])
    print("greedy sample: " + "".join(chars[i] for i in model.generate(prompt, 60)[0].tolist()))
    if not losses[-1] < losses[0] / 2:
        print(f"FAILED: final loss {losses[-1]:.4f} is not below half the first {losses[0]:.4f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
