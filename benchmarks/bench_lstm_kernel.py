"""Could an LSTM layer of our own make bf16 training faster than oneDNN's? Forward and
backward of a 2x512 LSTM (batch 32 x 64, one thread) three ways:

- fp32: torch's nn.LSTM (oneDNN);
- bf16 oneDNN: the same under bf16 autocast (its backward runs the forward again);
- bf16 own layer: a layer written here with torch operations: one bf16 matrix product per
  time step for the recurrence, the gate arithmetic in fp32, a hand-written backward with no
  second forward, and the weight gradients as one product over all time steps.

Also the matrix products alone, fp32 against bf16, at the shapes a step uses: the ceiling
for any bf16 kernel.

    python benchmarks/bench_lstm_kernel.py [--rounds 4]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from machine import best_us, cpu_name

BF16 = torch.bfloat16


class OwnLayer(torch.autograd.Function):
    """One LSTM layer over precomputed input gates gx (T, B, 4H), gate order i, f, g, o with
    the g rows of gx and U scaled by 2, so that one sigmoid serves every gate (g = 2s - 1)."""

    @staticmethod
    def forward(ctx, gx, u, h0, c0):
        steps, batch, gates = gx.shape
        h = gates // 4
        u_t = u.to(BF16).t().contiguous()
        acts = torch.empty(steps, batch, gates)
        cs = torch.empty(steps + 1, batch, h)
        hs = torch.empty(steps + 1, batch, h, dtype=BF16)
        cs[0], hs[0] = c0, h0
        c = c0
        for t in range(steps):
            a = acts[t]
            torch.sigmoid(torch.mm(hs[t], u_t).float().add_(gx[t]), out=a)
            g = a[:, 2 * h : 3 * h]
            g.mul_(2).sub_(1)
            c = torch.addcmul(a[:, h : 2 * h] * c, a[:, :h], g)
            cs[t + 1] = c
            torch.mul(a[:, 3 * h :], torch.tanh(c), out=hs[t + 1])
        slopes = acts * (1 - acts)  # d act / d pre-activation; for g (scaled by 2): (1-g^2)/2
        g_all = acts[:, :, 2 * h : 3 * h]
        torch.mul(1 - g_all * g_all, 0.5, out=slopes[:, :, 2 * h : 3 * h])
        ctx.save_for_backward(acts, slopes, cs, hs, u)
        return hs[1:].float(), hs[-1].float(), c

    @staticmethod
    def backward(ctx, d_out, d_h_last, d_c_last):
        acts, slopes, cs, hs, u = ctx.saved_tensors
        steps, batch, gates = acts.shape
        h = gates // 4
        u_b = u.to(BF16)
        d_gates = torch.empty(steps, batch, gates)
        dh = torch.zeros(batch, h) if d_h_last is None else d_h_last.clone()
        dc = torch.zeros(batch, h) if d_c_last is None else d_c_last.clone()
        for t in range(steps - 1, -1, -1):
            dh += d_out[t]
            a = acts[t]
            i, f, g, o = a[:, :h], a[:, h : 2 * h], a[:, 2 * h : 3 * h], a[:, 3 * h :]
            tc = torch.tanh(cs[t + 1])
            d = d_gates[t]
            torch.mul(dh, tc, out=d[:, 3 * h :])
            dc.addcmul_(dh * o, 1 - tc * tc)
            torch.mul(dc, g, out=d[:, :h])
            torch.mul(dc, cs[t], out=d[:, h : 2 * h])
            torch.mul(dc, i, out=d[:, 2 * h : 3 * h])
            d.mul_(slopes[t])
            dc.mul_(f)
            dh = torch.mm(d.to(BF16), u_b).float()
        d_u = torch.mm(d_gates.reshape(-1, gates).t().to(BF16), hs[:-1].reshape(-1, h)).float()
        return d_gates, d_u, dh, dc


class Net(torch.nn.Module):
    def __init__(self, vocab=65, embedding=64, hidden=512, layers=2):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab, embedding)
        self.lstm = torch.nn.LSTM(embedding, hidden, layers)
        self.head = torch.nn.Linear(hidden, vocab)
        scale = torch.ones(4 * hidden)
        scale[2 * hidden : 3 * hidden] = 2
        self.register_buffer("scale", scale)

    def forward(self, x, how: str):
        e = self.embedding(x)
        if how != "own":
            with torch.autocast("cpu", dtype=BF16, enabled=how == "bf16"):
                return self.head(self.lstm(e)[0]).float()
        batch, hidden = x.shape[1], self.lstm.hidden_size
        s = self.scale
        inputs = e
        for k in range(self.lstm.num_layers):
            w = getattr(self.lstm, f"weight_ih_l{k}") * s[:, None]
            u = getattr(self.lstm, f"weight_hh_l{k}") * s[:, None]
            b = (getattr(self.lstm, f"bias_ih_l{k}") + getattr(self.lstm, f"bias_hh_l{k}")) * s
            gx = F.linear(inputs.to(BF16), w.to(BF16)).float() + b
            zeros = torch.zeros(batch, hidden)
            inputs = OwnLayer.apply(gx, u, zeros.to(BF16), zeros)[0]
        with torch.autocast("cpu", dtype=BF16):
            return self.head(inputs).float()


def product_ratios() -> None:
    for m, k, n in ((32, 512, 2048), (32, 2048, 512), (2048, 512, 2048)):
        a, b = torch.randn(m, k), torch.randn(k, n)
        a16, b16 = a.to(BF16), b.to(BF16)
        fp32, bf16 = best_us(lambda: a @ b, 30, 5), best_us(lambda: a16 @ b16, 30, 5)  # noqa: B023
        print(
            f"product {m}x{k} by {k}x{n}: fp32 {fp32:,.0f} us, bf16 {bf16:,.0f} us, "
            f"{fp32 / bf16:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = Net()
    x = torch.randint(0, 65, (65, 32))

    def step(how: str) -> torch.Tensor:
        net.zero_grad()
        logits = net(x[:-1], how)
        loss = F.cross_entropy(logits.reshape(-1, 65), x[1:].reshape(-1))
        loss.backward()
        return net.lstm.weight_hh_l0.grad.clone()

    exact, own = step("fp32"), step("own")
    error = ((exact - own).norm() / exact.norm()).item()
    print(f"CPU: {cpu_name()}, torch {torch.__version__}, one thread")
    print(f"own layer's gradient against fp32 nn.LSTM: relative error {error:.3f} (bf16)")
    times: dict[str, list[float]] = {"fp32": [], "bf16": [], "own": []}
    for _ in range(args.rounds):
        for how in times:
            start = time.perf_counter()
            for _ in range(3):
                step(how)
            times[how].append((time.perf_counter() - start) / 3)
    base = statistics.median(times["fp32"])
    names = {"fp32": "fp32 nn.LSTM", "bf16": "bf16 oneDNN", "own": "bf16 own layer"}
    for how, runs in times.items():
        ms = statistics.median(runs)
        print(f"{names[how]:<16} {ms * 1000:6.0f} ms per forward+backward  {base / ms:.2f}x")
    product_ratios()


if __name__ == "__main__":
    main()
