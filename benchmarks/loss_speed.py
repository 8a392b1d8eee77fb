"""Forward + backward time of the Soft Silhouette Loss, interleaved in one process, medians.

Default: the class-sum loss (with and without num_classes), the pairwise form and pytorch-metric-learning's
SupConLoss(temperature=0.1); ratios to the class-sum loss.

--floor: the loss against its floor (L2 normalisation, class sums by index_add, the B x D x C product and its gradient:
the work no class-sum loss can skip), for each B and C: the loss as users call it (input checks, labels through
torch.unique), with num_classes and check_inputs=False, and the autograd graph the fused kernel replaced (fused=False).

--contention: the same loss and floor at one B and C while a competing process (a 2-thread matmul loop) keeps the
cores busy, with 1 and 2 torch threads, and a torch.profiler table of the loss's ops under contention.

    python benchmarks/loss_speed.py [--sizes 256 1024 4096 8192] [--dim 128] [--classes 100] [--device cpu|cuda]
    python benchmarks/loss_speed.py --floor [--sizes 1024 4096 16384 65536] [--classes 10 100 1000] [--threads 2] [--rounds 5]
    python benchmarks/loss_speed.py --contention [--sizes 4096] [--classes 100] [--rounds 5]
"""
import argparse, os, platform, statistics, subprocess, sys, time
import torch
import torch.nn.functional as F
from softsil_nb.losses import SoftSilhouetteLoss
from softsil_nb.silhouette import soft_silhouette_samples

def timer(fn, device):
    if device == 'cuda': torch.cuda.synchronize()
    t = time.perf_counter(); fn()
    if device == 'cuda': torch.cuda.synchronize()
    return time.perf_counter() - t

def spread(v:list, digits:int=2) -> str:
    "Median [min, max] of the ratios `v`."
    return f'{statistics.median(v):.{digits}f}x [{min(v):.{digits}f}, {max(v):.{digits}f}]'

def interleaved(fns:dict, device, reps:int) -> dict:
    "Median seconds of each of `fns`, called in turn `reps` times after one warm-up each."
    for f in fns.values(): f()
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items(): times[k].append(timer(f, device))
    return {k: statistics.median(v) for k, v in times.items()}

def main(sizes=(256, 1024, 4096, 8192), dim=128, classes=100, device=None, reps=None):
    from pytorch_metric_learning import losses as pml_losses
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
        med = interleaved({k: step(f) for k, f in peers.items()}, device, reps or max(3, min(30, int(2e7 // b ** 2))))
        med = {k: v * 1e3 for k, v in med.items()}
        print(f"| {b} | " + ' | '.join(f'{v:.2f}' for v in med.values())
              + f" | {med['PML SupConLoss'] / med['classsum']:.1f}x | {med['pairwise'] / med['classsum']:.1f}x |", flush=True)

def steps(b:int, dim:int, classes:int, device:str, seed:int=0) -> dict:
    "The floor and the loss variants at batch `b` with `classes` classes, each a function running forward and backward."
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, dim, generator=g).to(device).requires_grad_()
    y = torch.randint(0, classes, (b,), generator=g).to(device)
    grad_out = torch.randn(b, classes, generator=g).to(device)
    def floor():
        z = F.normalize(x, dim=1)
        s = z.new_zeros(classes, dim).index_add(0, y, z)                   # class sums
        (z @ s.T).backward(grad_out)                                     # the B x D x C product and its gradient
    plain, cheap = SoftSilhouetteLoss(), SoftSilhouetteLoss(num_classes=classes, check_inputs=False)
    def reference():                                                     # the autograd graph (before the fused kernel)
        r = soft_silhouette_samples(x, y, num_classes=classes, check_inputs=False, fused=False)
        v = r.valid.to(x.dtype)
        ((1 - r.silhouette) * v).sum().div(v.sum().clamp_min(1)).backward()
    return {'floor': floor, 'loss': lambda: plain(x, y).backward(), 'loss+num_classes,no checks': lambda: cheap(x, y).backward(),
            'autograd graph (fused=False)': reference}

def floor_table(sizes=(1024, 4096, 16384, 65536), classes=(10, 100, 1000), dim=128, device=None, reps=None, rounds=1):
    "Loss / floor for each B and C; with `rounds` > 1 the whole sweep `rounds` times, then each ratio's median over the rounds and its range."
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    print(f'device={device} torch={torch.__version__} threads={torch.get_num_threads()} cpu={platform.processor() or platform.machine()} D={dim} float32, forward + backward, interleaved medians')
    print(('| round ' if rounds > 1 else '') + '| B | C | floor (ms) | loss (ms) | loss+num_classes, no checks (ms) | autograd graph, fused=False (ms) | loss / floor | loss+num_classes / floor | graph / floor |')
    print('|---' * (10 if rounds > 1 else 9) + '|')
    got = {}
    for rnd in range(1, rounds + 1):                                        # the whole sweep per round: a slow spell of the machine hits one round
        for b in sizes:
            for c in classes:
                fns = steps(b, dim, c, device, seed=b + c)
                med = interleaved(fns, device, reps or max(3, min(15, int(4e8 // (b * c * dim)))))
                f, l, lc, r = (med[k] * 1e3 for k in fns)
                got.setdefault((b, c), []).append((f, l, lc, r))
                print((f'| {rnd} ' if rounds > 1 else '') + f'| {b} | {c} | {f:.2f} | {l:.2f} | {lc:.2f} | {r:.2f} | {l / f:.2f}x | {lc / f:.2f}x | {r / f:.2f}x |', flush=True)
                del fns
    if rounds == 1: return
    print(f'\nmedian over the {rounds} rounds [min, max]:\n')
    print('| B | C | floor (ms) | loss / floor | loss+num_classes / floor | graph / floor |')
    print('|---|---|---|---|---|---|')
    for (b, c), v in got.items():
        print(f'| {b} | {c} | {statistics.median(x[0] for x in v):.2f} | ' + ' | '.join(spread([x[k] / x[0] for x in v]) for k in (1, 2, 3)) + ' |')

BUSY = "import torch; torch.set_num_threads(2); a = torch.randn(1024, 1024)\nwhile True: a @ a"

def contention(b=4096, classes=100, dim=128, reps=15, rounds=1, profile_rows=12):
    "Loss and floor with 1 and 2 threads on a quiet machine and beside a busy 2-thread process, `rounds` times; the slow-downs per round; a profile of the loss under contention."
    fns = steps(b, dim, classes, 'cpu')
    print(f'torch={torch.__version__} cpus={os.cpu_count()} B={b} C={classes} D={dim} float32, forward + backward, interleaved medians of {reps}, {rounds} round(s)')
    print('| round | torch threads | competing process | ' + ' | '.join(f'{k} (ms)' for k in fns) + ' | loss / floor |')
    print('|---' * (len(fns) + 4) + '|')
    slows = {1: [], 2: []}                                                # per round and thread count: busy / quiet of each
    for rnd in range(1, rounds + 1):
        base = {}
        for busy in (False, True):
            proc = subprocess.Popen([sys.executable, '-c', BUSY]) if busy else None
            try:
                if busy: time.sleep(2)                                     # let it start
                for threads in (1, 2):
                    torch.set_num_threads(threads)
                    med = {k: v * 1e3 for k, v in interleaved(fns, 'cpu', reps).items()}
                    base.setdefault(threads, med)
                    if busy: slows[threads].append({k: med[k] / base[threads][k] for k in med})
                    print(f"| {rnd} | {threads} | {'busy 2-thread matmul' if busy else 'none'} | " + ' | '.join(f'{v:.2f}' for v in med.values())
                          + f" | {med['loss'] / med['floor']:.2f}x |", flush=True)
                if busy and rnd == rounds:
                    from torch.profiler import profile, ProfilerActivity
                    with profile(activities=[ProfilerActivity.CPU]) as prof:
                        for _ in range(3): fns['loss']()
                    profile_table = prof.key_averages().table(sort_by='self_cpu_time_total', row_limit=profile_rows)
            finally:
                if proc is not None: proc.kill(); proc.wait()
    torch.set_num_threads(2)
    print('\nslow-down beside the busy process (busy / quiet, the same round), median [min, max] over the rounds:\n')
    print('| torch threads | ' + ' | '.join(fns) + ' | loss slow-down / floor slow-down | cheap path slow-down / floor slow-down |')
    print('|---' * (len(fns) + 3) + '|')
    for threads, per in slows.items():
        rel = [r['loss'] / r['floor'] for r in per]
        relc = [r['loss+num_classes,no checks'] / r['floor'] for r in per]
        print(f'| {threads} | ' + ' | '.join(spread([r[k] for r in per], 1) for k in fns) + f' | {spread(rel, 1)} | {spread(relc, 1)} |')
    print(f'\nthe loss under contention, 2 threads, 3 calls, last round (torch.profiler, by self CPU time):\n')
    print(profile_table)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--sizes', type=int, nargs='+', default=None)
    p.add_argument('--dim', type=int, default=128)
    p.add_argument('--classes', type=int, nargs='+', default=None)
    p.add_argument('--device', default=None)
    p.add_argument('--reps', type=int, default=None)
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--rounds', type=int, default=1, help='--floor: the whole sweep this many times (median and range of each ratio); --contention: the quiet / busy pair this many times')
    p.add_argument('--floor', action='store_true', help='the loss against its floor')
    p.add_argument('--contention', action='store_true', help='loss and floor beside a busy process')
    a = p.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    if a.floor: floor_table(a.sizes or [1024, 4096, 16384, 65536], a.classes or [10, 100, 1000], a.dim, a.device, a.reps, a.rounds)
    elif a.contention: contention((a.sizes or [4096])[0], (a.classes or [100])[0], a.dim, a.reps or 15, a.rounds)
    else: main(a.sizes or [256, 1024, 4096, 8192], a.dim, (a.classes or [100])[0], a.device, a.reps)
