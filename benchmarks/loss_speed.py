"""Forward + backward time of the Soft Silhouette Loss (class-sum with and without num_classes, pairwise) against
pytorch-metric-learning's SupConLoss(temperature=0.1), interleaved in one process, medians; ratios to SupCon.

    python benchmarks/loss_speed.py [--sizes 256 1024 4096 8192] [--dim 128] [--classes 100] [--device cpu|cuda]
"""
import argparse, platform, statistics, time
import torch
from pytorch_metric_learning import losses as pml_losses
from softsil_nb.losses import SoftSilhouetteLoss

def timer(fn, device):
    if device == 'cuda': torch.cuda.synchronize()
    t = time.perf_counter(); fn()
    if device == 'cuda': torch.cuda.synchronize()
    return time.perf_counter() - t

def main(sizes=(256, 1024, 4096, 8192), dim=128, classes=100, device=None, reps=None):
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    peers = {'classsum': SoftSilhouetteLoss(method='classsum'),
             'classsum+num_classes': SoftSilhouetteLoss(method='classsum', num_classes=classes, check_inputs=False),
             'pairwise': SoftSilhouetteLoss(method='pairwise'),
             'PML SupConLoss': pml_losses.SupConLoss(temperature=0.1)}
    print(f'device={device} torch={torch.__version__} threads={torch.get_num_threads()} cpu={platform.processor() or platform.machine()} D={dim} C={classes}')
    print('| B | ' + ' | '.join(f'{k} (ms)' for k in peers) + ' | SupCon / classsum | pairwise / classsum |')
    print('|---' * (len(peers) + 3) + '|')
    for b in sizes:
        g = torch.Generator().manual_seed(b)
        x = torch.randn(b, dim, generator=g).to(device).requires_grad_()
        y = torch.randint(0, classes, (b,), generator=g).to(device)
        def step(loss): return lambda: loss(x, y).backward()
        n = reps or max(3, min(30, int(2e7 // b ** 2)))
        for f in peers.values(): step(f)()                                   # warm-up
        times = {k: [] for k in peers}
        for _ in range(n):                                                   # interleaved
            for k, f in peers.items(): times[k].append(timer(step(f), device))
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        print(f"| {b} | " + ' | '.join(f'{v:.2f}' for v in med.values())
              + f" | {med['PML SupConLoss'] / med['classsum']:.1f}x | {med['pairwise'] / med['classsum']:.1f}x |", flush=True)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--sizes', type=int, nargs='+', default=[256, 1024, 4096, 8192])
    p.add_argument('--dim', type=int, default=128)
    p.add_argument('--classes', type=int, default=100)
    p.add_argument('--device', default=None)
    p.add_argument('--reps', type=int, default=None)
    a = p.parse_args()
    main(a.sizes, a.dim, a.classes, a.device, a.reps)
