"""Seconds of one optimizer step of SmallCNN (`softsil_nb.learner.method_learner`, 28x28 grey images, 10 classes),
cross-entropy alone ('ce') against cross-entropy plus the Soft Silhouette term ('ce+sil'), at each batch size:
interleaved in one process (each round: `--steps` steps of one method, then of the other, in alternating order), the
median over the rounds of the per-round ratio, and its 95% interval by a bootstrap over the rounds (paired: both
methods of a round ran back to back under the same load). Steps are bare (zero_grad, forward, loss, backward, step):
no callbacks, as `softsil_nb.experiments.measure_overhead` times them; the loss is `learner.method_loss` (the Learner's
cross-entropy plus each term callback's weighted term, as a step of `fit` computes it).

    python benchmarks/train_overhead.py [--batch-sizes 128 1024] [--rounds 30] [--steps 3] [--threads 1]
"""
import argparse, os, platform, random, statistics, time, warnings
import torch
from softsil_nb.learner import method_loss

def learner(method:str, bs:int, seed:int=0):
    "A Learner of `method` on random data, its optimizer created, in train mode, and one batch of plain tensors."
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from softsil_nb.learner import method_learner
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(bs, 1, 28, 28, generator=g), torch.randint(0, 10, (bs,), generator=g)
    ds = list(zip(x, y))
    dls = DataLoaders(DataLoader(ds, bs=bs), DataLoader(ds, bs=bs))
    torch.manual_seed(seed)
    learn = method_learner(dls, method, n_classes=10, n_in=1, metrics=[])
    learn.create_opt(); learn.model.train()
    return learn, x, y

def step(learn, x, y):
    learn.opt.zero_grad()
    loss = method_loss(learn, learn.model(x), y); loss.backward(); learn.opt.step()

def bootstrap(ratios:list, n:int=2000, seed:int=0) -> tuple[float, float]:
    "95% interval of the median of `ratios` by resampling the rounds."
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(n))
    return meds[int(0.025 * n)], meds[int(0.975 * n) - 1]

def measure(bs:int, rounds:int, steps:int) -> dict:
    peers = {m: learner(m, bs) for m in ('ce', 'ce+sil')}
    for learn, x, y in peers.values(): step(learn, x, y)                # warm-up
    times, ratios = {m: [] for m in peers}, []
    for r in range(rounds):
        order = list(peers) if r % 2 == 0 else list(peers)[::-1]         # alternate who goes first
        per = {}
        for m in order:
            learn, x, y = peers[m]
            t = time.perf_counter()
            for _ in range(steps): step(learn, x, y)
            per[m] = (time.perf_counter() - t) / steps
            times[m].append(per[m])
        ratios.append(per['ce+sil'] / per['ce'])
    lo, hi = bootstrap(ratios)
    return dict(ce=statistics.median(times['ce']), sil=statistics.median(times['ce+sil']), ratio=statistics.median(ratios), lo=lo, hi=hi)

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--batch-sizes', type=int, nargs='+', default=[128, 1024])
    p.add_argument('--rounds', type=int, default=30)
    p.add_argument('--steps', type=int, default=3)
    p.add_argument('--threads', type=int, default=1)
    a = p.parse_args()
    warnings.filterwarnings('ignore'); torch.set_num_threads(a.threads)
    print(f'torch={torch.__version__} threads={a.threads} cpu={platform.processor() or platform.machine()} cores={os.cpu_count()} '
          f'rounds={a.rounds} x {a.steps} steps, load average {os.getloadavg()[0]:.1f} at the start')
    print('| batch | ce (ms per step) | ce+sil (ms per step) | ce+sil / ce (median of paired rounds) | 95% interval |')
    print('|---|---|---|---|---|')
    for bs in a.batch_sizes:
        r = measure(bs, a.rounds, a.steps)
        print(f"| {bs} | {r['ce'] * 1e3:.1f} | {r['sil'] * 1e3:.1f} | {r['ratio']:.3f}x | {r['lo']:.3f}-{r['hi']:.3f}x |", flush=True)
    print(f'load average {os.getloadavg()[0]:.1f} at the end')

if __name__ == '__main__': main()
