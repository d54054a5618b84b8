"""Small but faithful versions of well-known PyTorch example scripts, written against `torch` (the
module passed in: PyTorch itself, or gradc in its place): pytorch/examples' mnist, word_language_model
(RNNModel with tied weights, batchify, repackage_hidden, clip_grad_norm_ and the hand-written SGD
update p.data.add_(p.grad, alpha=-lr)), its DCGAN (ConvTranspose2d, BatchNorm2d, LeakyReLU(0.2,
inplace=True), BCELoss, Adam betas, weights_init through apply), the seq2seq translation tutorial's
GRU encoder and Bahdanau-attention decoder (bmm, cat, topk, torch.LongTensor, TensorDataset and
samplers), nanoGPT (model.py and the loop of train.py) and a torchvision-style ResNet
(BasicBlock with `out += identity`, kaiming_normal_, zero_init_residual, AdaptiveAvgPool2d,
torch.flatten, SGD nesterov, MultiStepLR). Sizes are
scaled down; the code shapes are the scripts'. Each `run(torch, init, compile)` returns the model
and the numbers the script prints (losses, accuracies), so runs can be compared."""
import numpy as np


# ---------------------------------------------------------------------- word_language_model
def word_lm(torch, rnn_type="LSTM"):
    nn, F = torch.nn, torch.nn.functional

    class RNNModel(nn.Module):
        def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.5, tie_weights=False):
            super().__init__()
            self.ntoken = ntoken
            self.drop = nn.Dropout(dropout)
            self.encoder = nn.Embedding(ntoken, ninp)
            self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
            self.decoder = nn.Linear(nhid, ntoken)
            if tie_weights:
                self.decoder.weight = self.encoder.weight
            self.init_weights()
            self.rnn_type, self.nhid, self.nlayers = rnn_type, nhid, nlayers

        def init_weights(self):
            nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
            nn.init.zeros_(self.decoder.bias)
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

        def forward(self, input, hidden):
            emb = self.drop(self.encoder(input))
            output, hidden = self.rnn(emb, hidden)
            decoded = self.decoder(self.drop(output)).view(-1, self.ntoken)
            return F.log_softmax(decoded, dim=1), hidden

        def init_hidden(self, bsz):
            weight = next(self.parameters())
            if self.rnn_type == "LSTM":
                return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))
            return weight.new_zeros(self.nlayers, bsz, self.nhid)

    def make():
        return RNNModel(rnn_type, 20, 12, 12, 2, dropout=0.0, tie_weights=True)

    def batchify(data, bsz):
        nbatch = data.size(0) // bsz
        return data.narrow(0, 0, nbatch * bsz).view(bsz, -1).t().contiguous()

    def repackage_hidden(h):
        return h.detach() if isinstance(h, torch.Tensor) else tuple(repackage_hidden(v) for v in h)

    def run(init=None, compile=False, bptt=5):
        model = make()
        if init is not None:
            model.load_state_dict(init)
        corpus = torch.tensor(np.random.default_rng(3).integers(0, 20, 90).tolist(), dtype=torch.long)
        train_data = batchify(corpus, 3)
        criterion, lr, out = nn.NLLLoss(), 5.0, []

        def step(data, targets, hidden, lr):
            model.zero_grad()
            hidden = repackage_hidden(hidden)
            output, hidden = model(data, hidden)
            loss = criterion(output, targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-lr)
            return loss, hidden

        fn = torch.compile(step) if compile else step
        for epoch in range(2):
            model.train()
            hidden = model.init_hidden(3)
            for i in range(0, train_data.size(0) - 1 - bptt, bptt):
                data, targets = train_data[i:i + bptt], train_data[i + 1:i + 1 + bptt].view(-1)
                loss, hidden = fn(data, targets, hidden, lr)
                out.append(loss.item())
            model.eval()
            total, hidden = 0.0, model.init_hidden(3)
            with torch.no_grad():
                for i in range(0, train_data.size(0) - 1, bptt):
                    seq_len = min(bptt, len(train_data) - 1 - i)
                    data, targets = train_data[i:i + seq_len], train_data[i + 1:i + 1 + seq_len].view(-1)
                    output, hidden = model(data, hidden)
                    hidden = repackage_hidden(hidden)
                    total += len(data) * criterion(output, targets).item()
            out.append(total / (len(train_data) - 1))
            lr /= 4.0
        return model, out

    return make, run


# ---------------------------------------------------------------------- dcgan
def dcgan(torch, nz=6, ngf=4, ndf=4, nc=3):
    nn, optim = torch.nn, torch.optim

    def weights_init(m):
        classname = m.__class__.__name__
        if classname.find("Conv") != -1:
            torch.nn.init.normal_(m.weight, 0.0, 0.02)
        elif classname.find("BatchNorm") != -1:
            torch.nn.init.normal_(m.weight, 1.0, 0.02)
            torch.nn.init.zeros_(m.bias)

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.main = nn.Sequential(
                nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 2, nc, 4, 2, 1, bias=False), nn.Tanh())

        def forward(self, input):
            return self.main(input)

    class Discriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.main = nn.Sequential(
                nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf * 2, 1, 4, 1, 0, bias=False), nn.Sigmoid())

        def forward(self, input):
            return self.main(input).view(-1, 1).squeeze(1)

    class GAN(nn.Module):
        def __init__(self):
            super().__init__()
            self.netG = Generator()
            self.netG.apply(weights_init)
            self.netD = Discriminator()
            self.netD.apply(weights_init)

    def run(init=None, compile=False, steps=2):
        gan = GAN()
        if init is not None:
            gan.load_state_dict(init)
        netG, netD = gan.netG, gan.netD
        criterion = nn.BCELoss()
        optimizerD = optim.Adam(netD.parameters(), lr=0.0002, betas=(0.5, 0.999))
        optimizerG = optim.Adam(netG.parameters(), lr=0.0002, betas=(0.5, 0.999))

        def step(real_cpu, noise):
            netD.zero_grad()
            label = torch.full((real_cpu.size(0),), 1, dtype=real_cpu.dtype)
            output = netD(real_cpu)
            errD_real = criterion(output, label)
            errD_real.backward()
            D_x = output.mean()
            fake = netG(noise)
            label.fill_(0)
            output = netD(fake.detach())
            errD_fake = criterion(output, label)
            errD_fake.backward()
            optimizerD.step()
            netG.zero_grad()
            label.fill_(1)
            output = netD(fake)
            errG = criterion(output, label)
            errG.backward()
            optimizerG.step()
            return errD_real + errD_fake, errG, D_x

        fn = torch.compile(step) if compile else step
        rng, out = np.random.default_rng(0), []
        for _ in range(steps):
            real = torch.from_numpy(rng.uniform(-1, 1, (4, nc, 16, 16)).astype(np.float32))
            noise = torch.from_numpy(rng.standard_normal((4, nz, 1, 1)).astype(np.float32))
            errD, errG, D_x = fn(real, noise)
            out += [errD.item(), errG.item(), D_x.item()]
        with torch.no_grad():
            out.append(netG(torch.from_numpy(rng.standard_normal((2, nz, 1, 1)).astype(np.float32))).sum().item())
        return gan, out

    return GAN, run


# ---------------------------------------------------------------------- seq2seq with attention
SOS_token, EOS_token, MAX_LENGTH = 0, 1, 4


def seq2seq(torch, hidden_size=8, n_in=10, n_out=9):
    nn, F, data = torch.nn, torch.nn.functional, torch.utils.data

    class EncoderRNN(nn.Module):
        def __init__(self, input_size, hidden_size):
            super().__init__()
            self.embedding = nn.Embedding(input_size, hidden_size)
            self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True)
            self.dropout = nn.Dropout(0.0)

        def forward(self, input):
            return self.gru(self.dropout(self.embedding(input)))

    class BahdanauAttention(nn.Module):
        def __init__(self, hidden_size):
            super().__init__()
            self.Wa = nn.Linear(hidden_size, hidden_size)
            self.Ua = nn.Linear(hidden_size, hidden_size)
            self.Va = nn.Linear(hidden_size, 1)

        def forward(self, query, keys):
            scores = self.Va(torch.tanh(self.Wa(query) + self.Ua(keys)))
            weights = F.softmax(scores.squeeze(2).unsqueeze(1), dim=-1)
            return torch.bmm(weights, keys), weights

    class AttnDecoderRNN(nn.Module):
        def __init__(self, hidden_size, output_size):
            super().__init__()
            self.embedding = nn.Embedding(output_size, hidden_size)
            self.attention = BahdanauAttention(hidden_size)
            self.gru = nn.GRU(2 * hidden_size, hidden_size, batch_first=True)
            self.out = nn.Linear(hidden_size, output_size)
            self.dropout = nn.Dropout(0.0)

        def forward(self, encoder_outputs, encoder_hidden, target_tensor=None):
            batch_size = encoder_outputs.size(0)
            decoder_input = torch.empty(batch_size, 1, dtype=torch.long).fill_(SOS_token)
            decoder_hidden, decoder_outputs, attentions = encoder_hidden, [], []
            for i in range(MAX_LENGTH):
                decoder_output, decoder_hidden, attn_weights = self.forward_step(decoder_input, decoder_hidden,
                                                                                 encoder_outputs)
                decoder_outputs.append(decoder_output)
                attentions.append(attn_weights)
                if target_tensor is not None:
                    decoder_input = target_tensor[:, i].unsqueeze(1)
                else:
                    _, topi = decoder_output.topk(1)
                    decoder_input = topi.squeeze(-1).detach()
            decoder_outputs = F.log_softmax(torch.cat(decoder_outputs, dim=1), dim=-1)
            return decoder_outputs, decoder_hidden, torch.cat(attentions, dim=1)

        def forward_step(self, input, hidden, encoder_outputs):
            embedded = self.dropout(self.embedding(input))
            context, attn_weights = self.attention(hidden.permute(1, 0, 2), encoder_outputs)
            output, hidden = self.gru(torch.cat((embedded, context), dim=2), hidden)
            return self.out(output), hidden, attn_weights

    class Seq2Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = EncoderRNN(n_in, hidden_size)
            self.decoder = AttnDecoderRNN(hidden_size, n_out)

    def run(init=None, compile=False):
        model = Seq2Seq()
        if init is not None:
            model.load_state_dict(init)
        encoder, decoder = model.encoder, model.decoder
        rng = np.random.default_rng(0)
        input_ids = np.zeros((6, MAX_LENGTH), dtype=np.int32)
        target_ids = np.zeros((6, MAX_LENGTH), dtype=np.int32)
        for idx in range(6):
            n = rng.integers(1, MAX_LENGTH)
            input_ids[idx, :n], input_ids[idx, n] = rng.integers(2, n_in, n), EOS_token
            target_ids[idx, :n], target_ids[idx, n] = rng.integers(2, n_out, n), EOS_token
        train_data = data.TensorDataset(torch.LongTensor(input_ids), torch.LongTensor(target_ids))
        loader = data.DataLoader(train_data, sampler=data.SequentialSampler(train_data), batch_size=3)
        encoder_optimizer = torch.optim.Adam(encoder.parameters(), lr=0.01)
        decoder_optimizer = torch.optim.Adam(decoder.parameters(), lr=0.01)
        criterion = nn.NLLLoss()

        def train_step(input_tensor, target_tensor):
            encoder_optimizer.zero_grad()
            decoder_optimizer.zero_grad()
            encoder_outputs, encoder_hidden = encoder(input_tensor)
            decoder_outputs, _, _ = decoder(encoder_outputs, encoder_hidden, target_tensor)
            loss = criterion(decoder_outputs.view(-1, decoder_outputs.size(-1)), target_tensor.view(-1))
            loss.backward()
            encoder_optimizer.step()
            decoder_optimizer.step()
            return loss

        fn = torch.compile(train_step) if compile else train_step
        out = [fn(input_tensor, target_tensor).item() for input_tensor, target_tensor in loader]
        with torch.no_grad():
            encoder_outputs, encoder_hidden = encoder(train_data[0][0].unsqueeze(0))
            decoder_outputs, _, attn = decoder(encoder_outputs, encoder_hidden)
            _, topi = decoder_outputs.topk(1)
            words = []
            for idx in topi.squeeze():
                if idx.item() == EOS_token:
                    break
                words.append(idx.item())
        return model, out + words + [attn.sum().item()]

    return Seq2Seq, run


# ---------------------------------------------------------------------- torchvision-style resnet
def resnet(torch, width=4, num_classes=5):
    nn = torch.nn

    def conv3x3(in_planes, out_planes, stride=1):
        return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)

    class BasicBlock(nn.Module):
        expansion = 1

        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = conv3x3(inplanes, planes, stride)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = conv3x3(planes, planes)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            identity = x
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            if self.downsample is not None:
                identity = self.downsample(x)
            out += identity
            return self.relu(out)

    class ResNet(nn.Module):
        def __init__(self, block, layers, zero_init_residual=True):
            super().__init__()
            self.inplanes = width
            self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            self.layer1 = self._make_layer(block, width, layers[0])
            self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(width * 2 * block.expansion, num_classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)
            if zero_init_residual:
                for m in self.modules():
                    if isinstance(m, BasicBlock):
                        nn.init.constant_(m.bn2.weight, 0)

        def _make_layer(self, block, planes, blocks, stride=1):
            downsample = None
            if stride != 1 or self.inplanes != planes * block.expansion:
                downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
            layers = [block(self.inplanes, planes, stride, downsample)]
            self.inplanes = planes * block.expansion
            layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
            return nn.Sequential(*layers)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.avgpool(self.layer2(self.layer1(x)))
            return self.fc(torch.flatten(x, 1))

    def make():
        return ResNet(BasicBlock, [2, 1])

    def run(init=None, compile=False, steps=3):
        model = make()
        if init is not None:
            model.load_state_dict(init)
        criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[1, 2], gamma=0.1)

        def step(images, target):
            output = model(images)
            loss = criterion(output, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return loss, output

        fn = torch.compile(step) if compile else step
        rng, out = np.random.default_rng(0), []
        for _ in range(steps):
            images = torch.from_numpy(rng.standard_normal((4, 3, 16, 16)).astype(np.float32))
            target = torch.from_numpy(rng.integers(0, num_classes, 4))
            model.train()
            loss, output = fn(images, target)
            out += [loss.item(), (output.argmax(1) == target).float().mean().item() * 100]
            scheduler.step()
        model.eval()
        with torch.no_grad():
            out.append(model(images).sum().item())
        return model, out

    return make, run


# ---------------------------------------------------------------------- nanoGPT
def nanogpt(torch, vocab_size=24, block_size=8, n_layer=2, n_head=2, n_embd=16):
    """nanoGPT's model.py and the loop of its train.py: start-up switches, SDPA with is_causal,
    wte tied to lm_head, the AdamW groups split by p.dim() with the inspect.signature probe for
    fused=, a manual cosine lr with warmup written into param_groups, gradient accumulation through
    a disabled GradScaler, clip_grad_norm_, estimate_loss under @torch.no_grad() (losses[k] =
    loss.item()), a checkpoint dict saved and loaded with a tensor best_val_loss, and generate."""
    import inspect
    import math
    import os
    from contextlib import nullcontext
    nn, F = torch.nn, torch.nn.functional

    class LayerNorm(nn.Module):
        def __init__(self, ndim, bias):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(ndim))
            self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

        def forward(self, input):
            return F.layer_norm(input, self.weight.shape, self.weight, self.bias, 1e-5)

    class CausalSelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(n_embd, 3 * n_embd)
            self.c_proj = nn.Linear(n_embd, n_embd)
            self.resid_dropout = nn.Dropout(0.0)
            self.flash = hasattr(torch.nn.functional, "scaled_dot_product_attention")

        def forward(self, x):
            B, T, C = x.size()
            q, k, v = self.c_attn(x).split(n_embd, dim=2)
            k = k.view(B, T, n_head, C // n_head).transpose(1, 2)
            q = q.view(B, T, n_head, C // n_head).transpose(1, 2)
            v = v.view(B, T, n_head, C // n_head).transpose(1, 2)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=True)
            return self.resid_dropout(self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C)))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.attn = LayerNorm(n_embd, True), CausalSelfAttention()
            self.ln_2 = LayerNorm(n_embd, True)
            self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = nn.ModuleDict(dict(
                wte=nn.Embedding(vocab_size, n_embd), wpe=nn.Embedding(block_size, n_embd),
                drop=nn.Dropout(0.0), h=nn.ModuleList([Block() for _ in range(n_layer)]),
                ln_f=LayerNorm(n_embd, True)))
            self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
            self.transformer.wte.weight = self.lm_head.weight
            self.apply(self._init_weights)
            for pn, p in self.named_parameters():
                if pn.endswith("c_proj.weight"):
                    torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))

        def _init_weights(self, module):
            if isinstance(module, nn.Linear):
                torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
                if module.bias is not None:
                    torch.nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Embedding):
                torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

        def forward(self, idx, targets=None):
            b, t = idx.size()
            pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
            x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
            for block in self.transformer.h:
                x = block(x)
            x = self.transformer.ln_f(x)
            if targets is not None:
                logits = self.lm_head(x)
                return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
            return self.lm_head(x[:, [-1], :]), None

        def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
            param_dict = {pn: p for pn, p in self.named_parameters() if p.requires_grad}
            optim_groups = [{"params": [p for p in param_dict.values() if p.dim() >= 2], "weight_decay": weight_decay},
                            {"params": [p for p in param_dict.values() if p.dim() < 2], "weight_decay": 0.0}]
            fused_available = "fused" in inspect.signature(torch.optim.AdamW).parameters
            extra_args = dict(fused=True) if fused_available and device_type == "cuda" else dict()
            return torch.optim.AdamW(optim_groups, lr=learning_rate, betas=betas, **extra_args)

        @torch.no_grad()
        def generate(self, idx, max_new_tokens, top_k=None):
            for _ in range(max_new_tokens):
                idx_cond = idx if idx.size(1) <= block_size else idx[:, -block_size:]
                logits, _ = self(idx_cond)
                logits = logits[:, -1, :]
                if top_k is not None:
                    v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                    logits[logits < v[:, [-1]]] = -float("Inf")
                idx_next = torch.argmax(F.softmax(logits, dim=-1), dim=-1, keepdim=True)  # greedy: same in both
                idx = torch.cat((idx, idx_next), dim=1)
            return idx

    def run(init=None, compile=False, out_dir=None, max_iters=4):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        device, device_type, ctx = "cpu", "cpu", nullcontext()
        data = np.random.default_rng(0).integers(0, vocab_size, 300).astype(np.uint16)
        rng = np.random.default_rng(5)

        def get_batch(split):
            ix = rng.integers(0, len(data) - block_size, 3)
            x = torch.stack([torch.from_numpy((data[i:i + block_size]).astype(np.int64)) for i in ix])
            y = torch.stack([torch.from_numpy((data[i + 1:i + 1 + block_size]).astype(np.int64)) for i in ix])
            return x.to(device), y.to(device)

        model = GPT()
        if init is not None:
            model.load_state_dict(init)
        model.to(device)
        scaler = torch.cuda.amp.GradScaler(enabled=False)
        optimizer = model.configure_optimizers(0.1, 1e-2, (0.9, 0.95), device_type)
        raw_model = model
        if compile:
            model = torch.compile(model)

        def get_lr(it, warmup_iters=2, lr_decay_iters=4, learning_rate=1e-2, min_lr=1e-3):
            if it < warmup_iters:
                return learning_rate * (it + 1) / (warmup_iters + 1)
            decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
            return min_lr + 0.5 * (1.0 + math.cos(math.pi * decay_ratio)) * (learning_rate - min_lr)

        @torch.no_grad()
        def estimate_loss(eval_iters=2):
            out = {}
            model.eval()
            for split in ["train", "val"]:
                losses = torch.zeros(eval_iters)
                for k in range(eval_iters):
                    X, Y = get_batch(split)
                    with ctx:
                        _, loss = model(X, Y)
                    losses[k] = loss.item()
                out[split] = losses.mean()
            model.train()
            return out

        X, Y = get_batch("train")
        out, best_val_loss = [], 1e9
        for iter_num in range(max_iters):
            lr = get_lr(iter_num)
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr
            if iter_num % 2 == 0:
                losses = estimate_loss()
                out += [float(losses["train"]), float(losses["val"])]
                if losses["val"] < best_val_loss:
                    best_val_loss = losses["val"]
                    checkpoint = {"model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
                                  "model_args": dict(n_layer=n_layer), "iter_num": iter_num,
                                  "best_val_loss": best_val_loss, "config": {"lr": lr}}
                    torch.save(checkpoint, os.path.join(out_dir, "ckpt.pt"))
                    ck = torch.load(os.path.join(out_dir, "ckpt.pt"), map_location=device)
                    assert ck["iter_num"] == iter_num and float(ck["best_val_loss"]) == float(best_val_loss)
            for micro_step in range(2):
                with ctx:
                    _, loss = model(X, Y)
                    loss = loss / 2
                X, Y = get_batch("train")
                scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            out.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)))
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            out.append(loss.item() * 2)
        raw_model.eval()
        out += raw_model.generate(torch.zeros((1, 1), dtype=torch.long), 4, top_k=5)[0].tolist()
        return raw_model, out

    return GPT, run


# ---------------------------------------------------------------------- mnist
def mnist(torch):
    """pytorch/examples' mnist/main.py: Net (conv, relu, max_pool2d, dropout, flatten, log_softmax),
    F.nll_loss, Adadelta with StepLR, the DataLoader loop with its log line, and the test loop
    (reduction='sum', argmax(keepdim=True), pred.eq(target.view_as(pred)).sum().item())."""
    nn, F, optim = torch.nn, torch.nn.functional, torch.optim

    class Net(nn.Module):
        def __init__(self):
            super(Net, self).__init__()
            self.conv1 = nn.Conv2d(1, 4, 3, 1)
            self.conv2 = nn.Conv2d(4, 8, 3, 1)
            self.dropout1 = nn.Dropout(0.0)
            self.dropout2 = nn.Dropout(0.0)
            self.fc1 = nn.Linear(128, 16)
            self.fc2 = nn.Linear(16, 10)

        def forward(self, x):
            x = F.relu(self.conv2(F.relu(self.conv1(x))))
            x = self.dropout1(F.max_pool2d(x, 2))
            x = torch.flatten(x, 1)
            x = self.dropout2(F.relu(self.fc1(x)))
            return F.log_softmax(self.fc2(x), dim=1)

    def run(init=None, compile=False):
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        rng = np.random.default_rng(0)
        dataset = torch.utils.data.TensorDataset(torch.from_numpy(rng.standard_normal((16, 1, 12, 12)).astype(np.float32)),
                                                 torch.from_numpy(rng.integers(0, 10, 16)))
        loader = torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=False)
        model = Net().to(device)
        if init is not None:
            model.load_state_dict(init)
        optimizer = optim.Adadelta(model.parameters(), lr=1.0)
        scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)

        def step(data, target):
            optimizer.zero_grad()
            loss = F.nll_loss(model(data), target)
            loss.backward()
            optimizer.step()
            return loss

        fn = torch.compile(step) if compile else step
        out = []
        for epoch in range(1, 3):
            model.train()
            for batch_idx, (data, target) in enumerate(loader):
                loss = fn(data.to(device), target.to(device))
                line = "Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}".format(
                    epoch, batch_idx * len(data), len(loader.dataset), 100. * batch_idx / len(loader), loss.item())
                out.append(float(line.rsplit(" ", 1)[1]))
            model.eval()
            test_loss, correct = 0, 0
            with torch.no_grad():
                for data, target in loader:
                    output = model(data)
                    test_loss += F.nll_loss(output, target, reduction="sum").item()
                    pred = output.argmax(dim=1, keepdim=True)
                    correct += pred.eq(target.view_as(pred)).sum().item()
            out += [test_loss / len(loader.dataset), correct]
            scheduler.step()
        return model, out

    return Net, run
