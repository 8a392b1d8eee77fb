"""The exact silhouette (`silhouette_samples`) against scikit-learn's `silhouette_samples` on the same array, timed
interleaved in one process (medians), and the largest difference of the values. torch runs with `--threads` threads
(default 2); scikit-learn with its default thread pool. Points: Gaussian clusters, D=64, 10 classes.

    python benchmarks/silhouette_speed.py [--sizes 5000 20000 50000] [--metrics euclidean sqeuclidean cosine]
                                          [--dtypes float32 float64] [--reps 3] [--threads 2]
"""
import argparse, platform, statistics, time
import numpy as np
import torch
from sklearn import metrics as skm
from softsil_nb.silhouette import silhouette_samples

def points(n, dim, classes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    return (rng.normal(size=(n, dim)) + 1.5 * rng.normal(size=(classes, dim))[y]).astype(dtype), y

def timed(fn):
    t = time.perf_counter(); out = fn(); return time.perf_counter() - t, out

def main(sizes=(5000, 20000, 50000), metrics=('euclidean', 'sqeuclidean', 'cosine'), dtypes=('float32', 'float64'),
         reps=3, threads=2, dim=64, classes=10, sklearn_max=None):
    torch.set_num_threads(threads)
    print(f'torch={torch.__version__} threads={torch.get_num_threads()} cpu={platform.processor() or platform.machine()} '
          f'D={dim} C={classes} reps={reps} (interleaved medians)')
    print('| N | metric | dtype | softsil_nb (ms) | scikit-learn (ms) | speed-up | max abs difference |')
    print('|---|---|---|---|---|---|---|')
    for n in sizes:
        for metric in metrics:
            for dt in dtypes:
                x, y = points(n, dim, classes, dt)
                xt, yt = torch.tensor(x), torch.tensor(y)
                ours, theirs = [], []
                silhouette_samples(xt[:500], yt[:500], metric=metric)            # warm-up
                for _ in range(reps):
                    t, s = timed(lambda: silhouette_samples(xt, yt, metric=metric)); ours.append(t)
                    t, r = timed(lambda: skm.silhouette_samples(x, y, metric=metric)); theirs.append(t)
                a, b = statistics.median(ours) * 1e3, statistics.median(theirs) * 1e3
                print(f'| {n} | {metric} | {dt} | {a:.0f} | {b:.0f} | {b / a:.1f}x | {np.abs(s.numpy() - r).max():.1e} |', flush=True)

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--sizes', type=int, nargs='+', default=[5000, 20000, 50000])
    p.add_argument('--metrics', nargs='+', default=['euclidean', 'sqeuclidean', 'cosine'])
    p.add_argument('--dtypes', nargs='+', default=['float32', 'float64'])
    p.add_argument('--reps', type=int, default=3)
    p.add_argument('--threads', type=int, default=2)
    a = p.parse_args()
    main(a.sizes, a.metrics, a.dtypes, a.reps, a.threads)
