"""More well-known PyTorch tutorial scripts, written against `torch` (the module passed in: PyTorch
itself, or gradc in its place), in the style of tests/thirdparty_scripts.py: the "Language
Translation with nn.Transformer" tutorial's Seq2SeqTransformer (PositionalEncoding with its
registered buffer, TokenEmbedding, nn.Transformer with causal and padding masks, create_mask,
CrossEntropyLoss(ignore_index=PAD_IDX), Adam betas/eps, greedy_decode), the "Spatial Transformer
Networks" tutorial (localisation net, affine_grid + grid_sample, fc_loc initialised to the
identity transform, SGD, nll_loss, the test loop; one change: fc_loc starts at a zoom by 0.9, not
the identity, since at the identity every sampling point lands exactly on a pixel, where the
gradient of grid_sample with respect to the grid has a kink, and which side of it a point falls
on depends on last-bit rounding that no two implementations share), and a siamese embedding net trained with
TripletMarginLoss (with a CosineEmbeddingLoss term and PairwiseDistance in its evaluation), and the
end-to-end speech recognition model (ResidualCNN, BidirectionalGRU, CTCLoss, GreedyDecoder). Sizes
are scaled down and dropout probabilities are 0 (so every run sees the same numbers); the code
shapes are the tutorials'. Each `run(init, compile)` returns the model and the numbers the script
prints."""
import math

import numpy as np


# ---------------------------------------------------------------------- translation with nn.Transformer
def translation(torch, src_vocab=13, tgt_vocab=11, emb_size=16, nhead=2, ffn=32):
    nn = torch.nn
    Tensor = torch.Tensor
    PAD_IDX, BOS_IDX, EOS_IDX = 1, 2, 3
    DEVICE = torch.device("cpu")

    class PositionalEncoding(nn.Module):
        def __init__(self, emb_size: int, dropout: float, maxlen: int = 5000):
            super(PositionalEncoding, self).__init__()
            den = torch.exp(- torch.arange(0, emb_size, 2) * math.log(10000) / emb_size)
            pos = torch.arange(0, maxlen).reshape(maxlen, 1)
            pos_embedding = torch.zeros((maxlen, emb_size))
            pos_embedding[:, 0::2] = torch.sin(pos * den)
            pos_embedding[:, 1::2] = torch.cos(pos * den)
            pos_embedding = pos_embedding.unsqueeze(-2)
            self.dropout = nn.Dropout(dropout)
            self.register_buffer('pos_embedding', pos_embedding)

        def forward(self, token_embedding: Tensor):
            return self.dropout(token_embedding + self.pos_embedding[:token_embedding.size(0), :])

    class TokenEmbedding(nn.Module):
        def __init__(self, vocab_size: int, emb_size):
            super(TokenEmbedding, self).__init__()
            self.embedding = nn.Embedding(vocab_size, emb_size)
            self.emb_size = emb_size

        def forward(self, tokens: Tensor):
            return self.embedding(tokens.long()) * math.sqrt(self.emb_size)

    class Seq2SeqTransformer(nn.Module):
        def __init__(self, num_encoder_layers, num_decoder_layers, emb_size, nhead, src_vocab_size, tgt_vocab_size,
                     dim_feedforward=512, dropout=0.1):
            super(Seq2SeqTransformer, self).__init__()
            self.transformer = nn.Transformer(d_model=emb_size, nhead=nhead, num_encoder_layers=num_encoder_layers,
                                              num_decoder_layers=num_decoder_layers,
                                              dim_feedforward=dim_feedforward, dropout=dropout)
            self.generator = nn.Linear(emb_size, tgt_vocab_size)
            self.src_tok_emb = TokenEmbedding(src_vocab_size, emb_size)
            self.tgt_tok_emb = TokenEmbedding(tgt_vocab_size, emb_size)
            self.positional_encoding = PositionalEncoding(emb_size, dropout=dropout)

        def forward(self, src, trg, src_mask, tgt_mask, src_padding_mask, tgt_padding_mask, memory_key_padding_mask):
            src_emb = self.positional_encoding(self.src_tok_emb(src))
            tgt_emb = self.positional_encoding(self.tgt_tok_emb(trg))
            outs = self.transformer(src_emb, tgt_emb, src_mask, tgt_mask, None, src_padding_mask, tgt_padding_mask,
                                    memory_key_padding_mask)
            return self.generator(outs)

        def encode(self, src, src_mask):
            return self.transformer.encoder(self.positional_encoding(self.src_tok_emb(src)), src_mask)

        def decode(self, tgt, memory, tgt_mask):
            return self.transformer.decoder(self.positional_encoding(self.tgt_tok_emb(tgt)), memory, tgt_mask)

    def generate_square_subsequent_mask(sz):
        mask = (torch.triu(torch.ones((sz, sz), device=DEVICE)) == 1).transpose(0, 1)
        mask = mask.float().masked_fill(mask == 0, float('-inf')).masked_fill(mask == 1, float(0.0))
        return mask

    def create_mask(src, tgt):
        src_seq_len = src.shape[0]
        tgt_seq_len = tgt.shape[0]
        tgt_mask = generate_square_subsequent_mask(tgt_seq_len)
        src_mask = torch.zeros((src_seq_len, src_seq_len), device=DEVICE).type(torch.bool)
        src_padding_mask = (src == PAD_IDX).transpose(0, 1)
        tgt_padding_mask = (tgt == PAD_IDX).transpose(0, 1)
        return src_mask, tgt_mask, src_padding_mask, tgt_padding_mask

    def make():
        transformer = Seq2SeqTransformer(1, 1, emb_size, nhead, src_vocab, tgt_vocab, ffn, dropout=0.0)
        for p in transformer.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        return transformer

    def batches(rng, n_batches=2, batch=4, s_len=7, t_len=6):
        """Token batches (S, B) as the tutorial's collate_fn builds them: BOS, tokens, EOS, then PAD."""
        out = []
        for _ in range(n_batches):
            cols_s, cols_t = [], []
            for _ in range(batch):
                ns, nt = int(rng.integers(2, s_len - 1)), int(rng.integers(2, t_len - 1))
                s = [BOS_IDX] + rng.integers(4, src_vocab, ns).tolist() + [EOS_IDX]
                t = [BOS_IDX] + rng.integers(4, tgt_vocab, nt).tolist() + [EOS_IDX]
                cols_s.append(s + [PAD_IDX] * (s_len + 1 - len(s)))
                cols_t.append(t + [PAD_IDX] * (t_len + 1 - len(t)))
            out.append((torch.tensor(np.array(cols_s).T.tolist()), torch.tensor(np.array(cols_t).T.tolist())))
        return out

    def greedy_decode(model, src, src_mask, max_len, start_symbol):
        src = src.to(DEVICE)
        src_mask = src_mask.to(DEVICE)
        memory = model.encode(src, src_mask)
        ys = torch.ones(1, 1).fill_(start_symbol).type(torch.long).to(DEVICE)
        for i in range(max_len - 1):
            memory = memory.to(DEVICE)
            tgt_mask = (generate_square_subsequent_mask(ys.size(0)).type(torch.bool)).to(DEVICE)
            out = model.decode(ys, memory, tgt_mask)
            out = out.transpose(0, 1)
            prob = model.generator(out[:, -1])
            _, next_word = torch.max(prob, dim=1)
            next_word = next_word.item()
            ys = torch.cat([ys, torch.ones(1, 1).type_as(src.data).fill_(next_word)], dim=0)
            if next_word == EOS_IDX:
                break
        return ys

    def run(init=None, compile=False):
        model = make()
        if init is not None:
            model.load_state_dict(init)
        model = model.to(DEVICE)
        loss_fn = torch.nn.CrossEntropyLoss(ignore_index=PAD_IDX)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.9, 0.98), eps=1e-9)
        data = batches(np.random.default_rng(0))

        def step(src, tgt_input, tgt_out, src_mask, tgt_mask, src_padding_mask, tgt_padding_mask):
            logits = model(src, tgt_input, src_mask, tgt_mask, src_padding_mask, tgt_padding_mask, src_padding_mask)
            optimizer.zero_grad()
            loss = loss_fn(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1))
            loss.backward()
            optimizer.step()
            return loss

        fn = torch.compile(step) if compile else step
        out = []
        for epoch in range(2):
            model.train()
            losses = 0
            for src, tgt in data:
                src, tgt = src.to(DEVICE), tgt.to(DEVICE)
                tgt_input = tgt[:-1, :]
                src_mask, tgt_mask, src_padding_mask, tgt_padding_mask = create_mask(src, tgt_input)
                loss = fn(src, tgt_input, tgt[1:, :], src_mask, tgt_mask, src_padding_mask, tgt_padding_mask)
                losses += loss.item()
            out.append(losses / len(data))
            model.eval()
            with torch.no_grad():
                for src, tgt in data[:1]:
                    tgt_input = tgt[:-1, :]
                    src_mask, tgt_mask, src_padding_mask, tgt_padding_mask = create_mask(src, tgt_input)
                    logits = model(src, tgt_input, src_mask, tgt_mask, src_padding_mask, tgt_padding_mask,
                                   src_padding_mask)
                    out.append(loss_fn(logits.reshape(-1, logits.shape[-1]), tgt[1:, :].reshape(-1)).item())
        model.eval()
        src = data[0][0][:, :1]
        num_tokens = src.shape[0]
        src_mask = (torch.zeros(num_tokens, num_tokens)).type(torch.bool)
        tokens = greedy_decode(model, src, src_mask, max_len=num_tokens + 5, start_symbol=BOS_IDX).flatten()
        out += [float(t) for t in tokens.tolist()]
        return model, out

    return make, run


# ---------------------------------------------------------------------- spatial transformer networks
def spatial_transformer(torch):
    nn, F, optim = torch.nn, torch.nn.functional, torch.optim
    drop = 0.0

    class Net(nn.Module):
        def __init__(self):
            super(Net, self).__init__()
            self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
            self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
            self.conv2_drop = nn.Dropout2d(p=drop)
            self.fc1 = nn.Linear(320, 50)
            self.fc2 = nn.Linear(50, 10)

            # Spatial transformer localization-network
            self.localization = nn.Sequential(
                nn.Conv2d(1, 8, kernel_size=7),
                nn.MaxPool2d(2, stride=2),
                nn.ReLU(True),
                nn.Conv2d(8, 10, kernel_size=5),
                nn.MaxPool2d(2, stride=2),
                nn.ReLU(True)
            )

            # Regressor for the 3 * 2 affine matrix
            self.fc_loc = nn.Sequential(
                nn.Linear(10 * 3 * 3, 32),
                nn.ReLU(True),
                nn.Linear(32, 3 * 2)
            )

            # Initialize the weights/bias with identity transformation (here: a zoom by 0.9, see run())
            self.fc_loc[2].weight.data.zero_()
            self.fc_loc[2].bias.data.copy_(torch.tensor([0.9, 0, 0, 0, 0.9, 0], dtype=torch.float))

        # Spatial transformer network forward function
        def stn(self, x):
            xs = self.localization(x)
            xs = xs.view(-1, 10 * 3 * 3)
            theta = self.fc_loc(xs)
            theta = theta.view(-1, 2, 3)

            grid = F.affine_grid(theta, x.size(), align_corners=False)
            x = F.grid_sample(x, grid, align_corners=False)

            return x

        def forward(self, x):
            # transform the input
            x = self.stn(x)

            # Perform the usual forward pass
            x = F.relu(F.max_pool2d(self.conv1(x), 2))
            x = F.relu(F.max_pool2d(self.conv2_drop(self.conv2(x)), 2))
            x = x.view(-1, 320)
            x = F.relu(self.fc1(x))
            x = F.dropout(x, p=drop, training=self.training)
            x = self.fc2(x)
            return F.log_softmax(x, dim=1)

    def run(init=None, compile=False):
        device = torch.device("cpu")
        rng = np.random.default_rng(1)
        images = torch.from_numpy(rng.standard_normal((12, 1, 28, 28)).astype(np.float32))
        labels = torch.from_numpy(rng.integers(0, 10, 12))
        train_loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=6)
        model = Net().to(device)
        if init is not None:
            model.load_state_dict(init)
        optimizer = optim.SGD(model.parameters(), lr=0.05)

        def step(data, target):
            optimizer.zero_grad()
            output = model(data)
            loss = F.nll_loss(output, target)
            loss.backward()
            optimizer.step()
            return loss

        fn = torch.compile(step) if compile else step
        out = []
        for epoch in range(1, 3):
            model.train()
            for batch_idx, (data, target) in enumerate(train_loader):
                data, target = data.to(device), target.to(device)
                loss = fn(data, target)
                out.append(loss.item())
            with torch.no_grad():
                model.eval()
                test_loss = 0
                correct = 0
                for data, target in train_loader:
                    output = model(data)
                    test_loss += F.nll_loss(output, target, reduction='sum').item()
                    pred = output.max(1, keepdim=True)[1]
                    correct += pred.eq(target.view_as(pred)).sum().item()
                test_loss /= len(train_loader.dataset)
                out += [test_loss, correct]
                # what visualize_stn shows: the transformed batch
                out.append(model.stn(images[:4]).abs().sum().item())
        return model, out

    return Net, run


# ---------------------------------------------------------------------- siamese net with a triplet loss
def siamese_triplet(torch, dim_in=12, dim_emb=6):
    nn, F = torch.nn, torch.nn.functional

    class EmbeddingNet(nn.Module):
        def __init__(self):
            super(EmbeddingNet, self).__init__()
            self.convnet = nn.Sequential(nn.Conv1d(1, 4, 3), nn.PReLU(), nn.MaxPool1d(2, stride=2),
                                         nn.Conv1d(4, 8, 3), nn.PReLU())
            self.fc = nn.Sequential(nn.Linear(8 * 3, 16), nn.PReLU(), nn.Linear(16, dim_emb))

        def forward(self, x):
            output = self.convnet(x)
            output = output.view(output.size()[0], -1)
            return self.fc(output)

        def get_embedding(self, x):
            return self.forward(x)

    class TripletNet(nn.Module):
        def __init__(self, embedding_net):
            super(TripletNet, self).__init__()
            self.embedding_net = embedding_net

        def forward(self, x1, x2, x3):
            return self.embedding_net(x1), self.embedding_net(x2), self.embedding_net(x3)

        def get_embedding(self, x):
            return self.embedding_net(x)

    def make():
        return TripletNet(EmbeddingNet())

    def run(init=None, compile=False):
        model = make()
        if init is not None:
            model.load_state_dict(init)
        rng = np.random.default_rng(2)
        centres = rng.standard_normal((3, 1, dim_in)).astype(np.float32)
        cls = rng.integers(0, 3, (4, 8))
        data = []
        for row in cls:
            a = centres[row] + 0.3 * rng.standard_normal((8, 1, dim_in)).astype(np.float32)
            p = centres[row] + 0.3 * rng.standard_normal((8, 1, dim_in)).astype(np.float32)
            n = centres[(row + 1) % 3] + 0.3 * rng.standard_normal((8, 1, dim_in)).astype(np.float32)
            data.append(tuple(torch.from_numpy(v) for v in (a, p, n)))
        loss_fn = nn.TripletMarginLoss(margin=1.0, p=2)
        cos_fn = nn.CosineEmbeddingLoss(margin=0.1)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 8, gamma=0.1, last_epoch=-1)
        pdist = nn.PairwiseDistance(p=2)

        def step(anchor, positive, negative, target):
            optimizer.zero_grad()
            ea, ep, en = model(anchor, positive, negative)
            loss = loss_fn(ea, ep, en) + 0.1 * cos_fn(ea, en, target)
            loss.backward()
            optimizer.step()
            return loss

        fn = torch.compile(step) if compile else step
        out = []
        target = -torch.ones(8)
        for epoch in range(2):
            model.train()
            total = 0.0
            for anchor, positive, negative in data:
                total += fn(anchor, positive, negative, target).item()
            scheduler.step()
            out.append(total / len(data))
            model.eval()
            with torch.no_grad():
                a, p, n = data[0]
                ea, ep, en = model(a, p, n)
                out += [pdist(ea, ep).mean().item(), pdist(ea, en).mean().item(),
                        F.triplet_margin_loss(ea, ep, en, swap=True, reduction='sum').item()]
        return model, out

    return make, run


# ---------------------------------------------------------------------- speech recognition with CTC
def speech_ctc(torch, n_feats=8, n_class=6, rnn_dim=12):
    """The "Building an end-to-end Speech Recognition model in PyTorch" model shape: a ResCNN
    front end (LayerNorm over features, GELU), BidirectionalGRU layers (batch_first), a classifier,
    F.log_softmax(dim=2).transpose(0, 1) into nn.CTCLoss(blank=...), AdamW with OneCycleLR,
    clip_grad_norm_, and the GreedyDecoder (argmax, collapse repeats, drop blanks)."""
    nn, F = torch.nn, torch.nn.functional
    blank = n_class - 1

    class CNNLayerNorm(nn.Module):
        def __init__(self, n_feats):
            super(CNNLayerNorm, self).__init__()
            self.layer_norm = nn.LayerNorm(n_feats)

        def forward(self, x):
            # x (batch, channel, feature, time)
            x = x.transpose(2, 3).contiguous()  # (batch, channel, time, feature)
            x = self.layer_norm(x)
            return x.transpose(2, 3).contiguous()  # (batch, channel, feature, time)

    class ResidualCNN(nn.Module):
        def __init__(self, in_channels, out_channels, kernel, stride, dropout, n_feats):
            super(ResidualCNN, self).__init__()
            self.cnn1 = nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2)
            self.cnn2 = nn.Conv2d(out_channels, out_channels, kernel, stride, padding=kernel // 2)
            self.dropout1 = nn.Dropout(dropout)
            self.dropout2 = nn.Dropout(dropout)
            self.layer_norm1 = CNNLayerNorm(n_feats)
            self.layer_norm2 = CNNLayerNorm(n_feats)

        def forward(self, x):
            residual = x  # (batch, channel, feature, time)
            x = self.layer_norm1(x)
            x = F.gelu(x)
            x = self.dropout1(x)
            x = self.cnn1(x)
            x = self.layer_norm2(x)
            x = F.gelu(x)
            x = self.dropout2(x)
            x = self.cnn2(x)
            x += residual
            return x  # (batch, channel, feature, time)

    class BidirectionalGRU(nn.Module):
        def __init__(self, rnn_dim, hidden_size, dropout, batch_first):
            super(BidirectionalGRU, self).__init__()
            self.BiGRU = nn.GRU(input_size=rnn_dim, hidden_size=hidden_size, num_layers=1, batch_first=batch_first,
                                bidirectional=True)
            self.layer_norm = nn.LayerNorm(rnn_dim)
            self.dropout = nn.Dropout(dropout)

        def forward(self, x):
            x = self.layer_norm(x)
            x = F.gelu(x)
            x, _ = self.BiGRU(x)
            x = self.dropout(x)
            return x

    class SpeechRecognitionModel(nn.Module):
        def __init__(self, n_cnn_layers, n_rnn_layers, rnn_dim, n_class, n_feats, stride=2, dropout=0.1):
            super(SpeechRecognitionModel, self).__init__()
            n_feats = n_feats // 2
            self.cnn = nn.Conv2d(1, 4, 3, stride=stride, padding=3 // 2)  # cnn for extracting hierarchical features
            self.rescnn_layers = nn.Sequential(*[
                ResidualCNN(4, 4, kernel=3, stride=1, dropout=dropout, n_feats=n_feats)
                for _ in range(n_cnn_layers)
            ])
            self.fully_connected = nn.Linear(n_feats * 4, rnn_dim)
            self.birnn_layers = nn.Sequential(*[
                BidirectionalGRU(rnn_dim=rnn_dim if i == 0 else rnn_dim * 2,
                                 hidden_size=rnn_dim, dropout=dropout, batch_first=i == 0)
                for i in range(n_rnn_layers)
            ])
            self.classifier = nn.Sequential(
                nn.Linear(rnn_dim * 2, rnn_dim),  # birnn returns rnn_dim*2
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(rnn_dim, n_class)
            )

        def forward(self, x):
            x = self.cnn(x)
            x = self.rescnn_layers(x)
            sizes = x.size()
            x = x.view(sizes[0], sizes[1] * sizes[2], sizes[3])  # (batch, feature, time)
            x = x.transpose(1, 2)  # (batch, time, feature)
            x = self.fully_connected(x)
            x = self.birnn_layers(x)
            x = self.classifier(x)
            return x

    def GreedyDecoder(output, labels, label_lengths, blank_label=blank, collapse_repeated=True):
        arg_maxes = torch.argmax(output, dim=2)
        decodes = []
        targets = []
        for i, args in enumerate(arg_maxes):
            decode = []
            targets.append(labels[i][:label_lengths[i]].tolist())
            for j, index in enumerate(args):
                if index != blank_label:
                    if collapse_repeated and j != 0 and index == args[j - 1]:
                        continue
                    decode.append(index.item())
            decodes.append(decode)
        return decodes, targets

    def make():
        return SpeechRecognitionModel(1, 2, rnn_dim, n_class, n_feats, stride=2, dropout=0.0)

    def run(init=None, compile=False):
        model = make()
        if init is not None:
            model.load_state_dict(init)
        rng = np.random.default_rng(3)
        batches = []
        for _ in range(2):
            spectrograms = torch.from_numpy(rng.standard_normal((3, 1, n_feats, 10)).astype(np.float32))
            labels = torch.from_numpy(rng.integers(0, blank, (3, 3)))
            batches.append((spectrograms, labels, [5, 4, 5], [3, 2, 2]))
        optimizer = torch.optim.AdamW(model.parameters(), 5e-3)
        criterion = nn.CTCLoss(blank=blank)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=5e-3, steps_per_epoch=len(batches),
                                                        epochs=2, anneal_strategy='linear')

        def step(spectrograms, labels, input_lengths, label_lengths):
            optimizer.zero_grad()
            output = model(spectrograms)  # (batch, time, n_class)
            output = F.log_softmax(output, dim=2)
            output = output.transpose(0, 1)  # (time, batch, n_class)
            loss = criterion(output, labels, input_lengths, label_lengths)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            return loss

        fn = torch.compile(step) if compile else step
        out = []
        for epoch in range(2):
            model.train()
            for spectrograms, labels, input_lengths, label_lengths in batches:
                loss = fn(spectrograms, labels, torch.tensor(input_lengths), torch.tensor(label_lengths))
                scheduler.step()
                out.append(loss.item())
            model.eval()
            with torch.no_grad():
                spectrograms, labels, input_lengths, label_lengths = batches[0]
                output = F.log_softmax(model(spectrograms), dim=2)
                out.append(criterion(output.transpose(0, 1), labels, input_lengths, label_lengths).item())
                decoded_preds, decoded_targets = GreedyDecoder(output, labels, label_lengths)
                out += [float(len(p)) for p in decoded_preds] + [float(sum(p)) for p in decoded_preds]
        return model, out

    return make, run
