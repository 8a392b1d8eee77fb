"""Seconds of one experiment run's parts, the way `softsil_nb.experiments.build_learner` trains now (channels-last
model, no validation pass inside `fit`) against the way it trained before (contiguous tensors, one more pass over the
test split after the last epoch), interleaved in one process on the same data, seed and method.

    python benchmarks/run_speed.py                      # print the table
    python benchmarks/run_speed.py --out BENCHMARKS.md  # and write it into the "## Experiment run speed" section
"""
import argparse, datetime, os, platform, re, statistics, time, warnings
from pathlib import Path
import torch

def timed(f) -> float:
    t = time.perf_counter(); f(); return time.perf_counter() - t

def measure(dataset:str, methods:list, epochs:int, rounds:int) -> dict:
    "{method: {'train_contiguous', 'train_channels_last', 'eval_contiguous', 'eval_channels_last'}} medians over `rounds`."
    from softsil_nb.experiments import RunConfig, build_learner
    from softsil_nb.learner import fit_method
    out = {m: {} for m in methods}
    for _ in range(rounds):
        for m in methods:
            for fmt in ('contiguous', 'channels_last'):
                cfg = RunConfig(dataset, m, 0, k_per_class=50, epochs=epochs)
                dls, learn = build_learner(cfg)
                if fmt == 'contiguous': learn.remove_cb(learn.channels_last)
                with learn.no_bar(), learn.no_logging():
                    out[m].setdefault(f'train_{fmt}', []).append(timed(lambda: fit_method(learn, epochs, cfg.lr, 1, cfg.stage2_lr)))
                    out[m].setdefault(f'eval_{fmt}', []).append(timed(lambda: learn.get_preds()))
    return {m: {k: statistics.median(v) for k, v in d.items()} for m, d in out.items()}

def table(res:dict, epochs:int) -> str:
    lines = ['| method | train, contiguous (s) | train, channels-last (s) | speed-up | test pass, contiguous (s) | test pass, channels-last (s) '
             f'| run before / run now (30 epochs) |', '|---|---|---|---|---|---|---|']
    for m, r in res.items():
        per_epoch_old, per_epoch_new = r['train_contiguous'] / epochs, r['train_channels_last'] / epochs
        before = 30 * per_epoch_old + 2 * r['eval_contiguous']         # the old runner validated after the last epoch, then evaluated
        now = 30 * per_epoch_new + r['eval_channels_last']
        lines.append(f"| {m} | {r['train_contiguous']:.2f} | {r['train_channels_last']:.2f} | {r['train_contiguous'] / r['train_channels_last']:.2f}x "
                     f"| {r['eval_contiguous']:.2f} | {r['eval_channels_last']:.2f} | {before / now:.2f}x |")
    return '\n'.join(lines)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--dataset', default='mnist'); p.add_argument('--methods', nargs='+', default=['ce', 'ce+sil', 'ce+supcon+sil'])
    p.add_argument('--epochs', type=int, default=3); p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--threads', type=int, default=1); p.add_argument('--out', default=None)
    a = p.parse_args()
    warnings.filterwarnings('ignore'); torch.set_num_threads(a.threads)
    res = measure(a.dataset, a.methods, a.epochs, a.rounds)
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
    text = (f'Training {a.epochs} epochs (50 images per class of **{a.dataset}**, batches of 128; two-stage methods add one epoch of their '
            f'linear classifier) and one pass over the test split, in one process, interleaved, medians of {a.rounds} rounds, '
            f'{a.threads} thread(s). The last column estimates a whole paper-suite run (30 epochs, then the evaluation) before and after '
            'the change: the old runner also validated on the test split after the last epoch, so it made two passes.\n\n'
            + table(res, a.epochs) + f'\n\nMachine: {platform.machine()}, {os.cpu_count()} CPU cores, load average {load:.1f} during the run; '
            f'torch {torch.__version__}; {datetime.date.today()}. Reproduce: `python benchmarks/run_speed.py --out BENCHMARKS.md`.\n')
    print(text)
    if a.out:
        path = Path(a.out); doc = path.read_text() if path.exists() else '# Benchmarks\n'
        section = '## Experiment run speed\n\n' + text
        doc = re.sub(r'## Experiment run speed\n.*?(?=\n## |\Z)', lambda _: section, doc, flags=re.S) if '## Experiment run speed' in doc else doc.rstrip() + '\n\n' + section
        path.write_text(doc)

if __name__ == '__main__': main()
