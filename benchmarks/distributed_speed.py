"""Time per loss call (forward + backward) with global_batch=True on W gloo processes on the CPU, against the
single-process loss on the same global batch and the per-rank (slice-only, not global) loss, measured in the same
processes, interleaved, medians over repetitions (rank 0's timings; the ranks are synchronised by a barrier).

    python benchmarks/distributed_speed.py [--ranks 2] [--sizes 256 1024 4096] [--dim 128] [--classes 10] [--reps 20]
"""
import argparse, platform, statistics, time
import torch
import torch.distributed as dist
from softsil_nb.distributed import run_ranks, rank_slice, world
from softsil_nb.losses import SoftSilhouetteLoss, SupConLoss

PEERS = {
    'sil cosine (class sums)': lambda c, gb: SoftSilhouetteLoss(global_batch=gb),
    'sil cosine, num_classes': lambda c, gb: SoftSilhouetteLoss(num_classes=c, check_inputs=False, global_batch=gb),
    'sil euclidean (gather)': lambda c, gb: SoftSilhouetteLoss(metric='euclidean', global_batch=gb),
    'SupCon (gather)': lambda c, gb: SupConLoss(global_batch=gb),
}

def bench(sizes, dim, classes, reps):
    "On every rank: median seconds of the global, single-process and slice-only loss calls for every peer and size."
    rank, w = world()
    lat = []
    for i in range(reps + 2):                                        # the latency of one collective, for scale
        dist.barrier(); t = time.perf_counter(); dist.all_reduce(torch.zeros(1)); lat.append(time.perf_counter() - t)
    out = {'latency': statistics.median(lat[2:])}
    for b in sizes:
        g = torch.Generator().manual_seed(b)
        x = torch.randn(b, dim, generator=g)
        y = torch.randint(0, classes, (b,), generator=g)
        s = rank_slice([b // w + (r < b % w) for r in range(w)])
        for name, make in PEERS.items():
            calls = {'global': (make(classes, True), x[s], y[s]), 'single process': (make(classes, False), x, y),
                     'slice only': (make(classes, False), x[s], y[s])}
            times = {k: [] for k in calls}
            for i in range(reps + 2):                                # 2 warm-up rounds
                for k, (loss, xx, yy) in calls.items():
                    xx = xx.clone().requires_grad_()
                    dist.barrier()
                    t = time.perf_counter(); loss(xx, yy).backward(); dt = time.perf_counter() - t
                    if i >= 2: times[k].append(dt)
            out[(b, name)] = {k: statistics.median(v) for k, v in times.items()}
    return out

def main(ranks=2, sizes=(256, 1024, 4096), dim=128, classes=10, reps=20):
    res = run_ranks(bench, ranks, list(sizes), dim, classes, reps, timeout=3600)[0]
    print(f'{ranks} gloo processes, 1 thread each, torch={torch.__version__} cpu={platform.processor() or platform.machine()} D={dim} C={classes}, float32, median of {reps}')
    print(f"one all-reduce of one number: {res.pop('latency') * 1e3:.2f} ms")
    print('| B (global) | loss | global_batch=True (ms) | single process, whole batch (ms) | slice only, not global (ms) | global / single process |')
    print('|---|---|---|---|---|---|')
    for (b, name), t in res.items():
        print(f"| {b} | {name} | {t['global'] * 1e3:.2f} | {t['single process'] * 1e3:.2f} | {t['slice only'] * 1e3:.2f} | "
              f"{t['global'] / t['single process']:.2f}x |")

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--ranks', type=int, default=2)
    ap.add_argument('--sizes', type=int, nargs='+', default=[256, 1024, 4096])
    ap.add_argument('--dim', type=int, default=128)
    ap.add_argument('--classes', type=int, default=10)
    ap.add_argument('--reps', type=int, default=20)
    a = ap.parse_args()
    main(a.ranks, a.sizes, a.dim, a.classes, a.reps)
