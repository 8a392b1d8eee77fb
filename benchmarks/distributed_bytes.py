"""Bytes one rank sends per loss call (forward + backward) under global_batch=True: the all-reduce of class sums
(class-sum metrics) against gathering all embeddings (pairwise form, SupCon), computed from the collectives' sizes.

Ring algorithms (what gloo and nccl use for large messages): an all-reduce of M numbers sends 2 (W-1)/W M per rank,
an all-gather or reduce-scatter of M numbers in total sends (W-1)/W M per rank. Per loss call:
  class sums: forward all-reduce of S, Q (C*D + C, with gradient) + counts (C) + 2 scalars; backward all-reduce of C*D + C + 1;
              plus, without num_classes, the label-set gather (sizes + the distinct labels, int64).
  gather:     forward all-gather of N*D embeddings + N labels (int64) + sizes; backward reduce-scatter of N*D gradients.

    python benchmarks/distributed_bytes.py [--bytes 4]          # prints the markdown table for BENCHMARKS.md
"""
import argparse

def ring_allreduce(m, w): return 2 * (w - 1) / w * m
def ring_gather(m, w): return (w - 1) / w * m

def classsum_bytes(n, d, c, w, fb=4, num_classes=True):
    "Bytes one rank sends for the class-sum all-reduce path (forward + backward)."
    fwd = ring_allreduce(c * d + c, w) + ring_allreduce(c, w) + 2 * ring_allreduce(1, w)
    bwd = ring_allreduce(c * d + c + 1, w)
    labels = 0 if num_classes else 8 * (ring_gather(w, w) + ring_gather(w * min(c, n // w), w))   # int64 sizes and label sets
    return fb * (fwd + bwd) + labels

def gather_bytes(n, d, c, w, fb=4):
    "Bytes one rank sends to gather every embedding with gradient (forward all-gather, backward reduce-scatter)."
    return fb * (ring_gather(n * d, w) * 2 + 2 * ring_allreduce(1, w)) + 8 * (ring_gather(n, w) + ring_gather(w, w))

def human(b):
    for unit in ('B', 'KB', 'MB', 'GB'):
        if b < 1024 or unit == 'GB': return f'{b:.0f} {unit}' if unit == 'B' else f'{b:.1f} {unit}'
        b /= 1024

def main(fb=4):
    print(f'| global batch N | D | C | ranks W | class-sum all-reduce | + label-set agreement | gather all embeddings | gather / all-reduce |')
    print('|---|---|---|---|---|---|---|---|')
    for n, d, c in ((256, 128, 10), (1024, 128, 100), (1024, 512, 1000), (4096, 128, 100), (4096, 2048, 1000), (16384, 256, 1000)):
        for w in (2, 8, 64):
            if n // w < 2: continue
            a, al, g = classsum_bytes(n, d, c, w, fb), classsum_bytes(n, d, c, w, fb, num_classes=False), gather_bytes(n, d, c, w, fb)
            print(f'| {n} | {d} | {c} | {w} | {human(a)} | {human(al)} | {human(g)} | {g / a:.1f}x |')

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--bytes', type=int, default=4, help='bytes per number (4: float32, 2: bf16)')
    main(ap.parse_args().bytes)
