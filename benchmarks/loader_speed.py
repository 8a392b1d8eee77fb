"""Images per second of `softsil_nb.loaders.DeviceDataLoader` against fastai's standard `DataBlock` pipeline,
on the same data with equivalent augmentation, in one run, on the CPU (and CUDA when present).

Augmentation in both: a random crop of the image padded by size/8 zeros, rotation up to 10 degrees, zoom 0.9..1.1,
horizontal flips only where the task allows them, then normalisation.
- DeviceDataLoader: all of it batched on the device (one gather, one grid_sample per batch).
- fastai: `CropPad` + `RandomCrop` item transforms on PIL images (per image, in `--num-workers` worker processes), then
  `aug_transforms(...)` + `Normalize` batch transforms on the device: fastai's usual recipe.

    python benchmarks/loader_speed.py                      # print the table
    python benchmarks/loader_speed.py --out BENCHMARKS.md  # and write it into the "## Loader speed" section
"""
import argparse, datetime, os, platform, re, sys, time
from pathlib import Path
import numpy as np
import torch

def _sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize(dev)

def time_loader(dl, n_batches:int, dev, min_seconds:float=1.0) -> float:
    "Images per second over at least `n_batches` batches and `min_seconds`, epochs restarting as needed (after one warm-up batch)."
    it = iter(dl); next(it); del it # warm-up: workers, caches, kernels
    _sync(dev)
    n_img, n_b, t0 = 0, 0, time.perf_counter()
    while n_b < n_batches or time.perf_counter() - t0 < min_seconds:
        for x, y in dl:
            n_img += len(y); n_b += 1
            if n_b >= n_batches and time.perf_counter() - t0 >= min_seconds: break
    _sync(dev)
    return n_img / (time.perf_counter() - t0)

class ArrayGetter:
    "Item getter for fastai: index -> PIL image or label (a class, so worker processes can pickle it)."
    def __init__(self, x, y=None, classes=None): self.x, self.y, self.classes = x, y, classes
    def __call__(self, i):
        from fastai.vision.core import PILImage, PILImageBW
        if self.y is not None: return self.classes[self.y[i]]
        a = self.x[i]
        return PILImageBW.create(a[0]) if a.shape[0] == 1 else PILImage.create(a.transpose(1, 2, 0))

def fastai_dataloaders(data, bs:int, num_workers:int, dev, pad:int, mean, std):
    "fastai's standard pipeline on the same arrays, with equivalent augmentation."
    from fastai.vision.all import (DataBlock, ImageBlock, CategoryBlock, PILImage, PILImageBW, IndexSplitter, CropPad,
                                   RandomCrop, aug_transforms, Normalize)
    x = np.concatenate([data.x_train, data.x_test]); y = np.concatenate([data.y_train, data.y_test])
    h = data.image_size[0]
    dblock = DataBlock(blocks=(ImageBlock(PILImageBW if data.channels == 1 else PILImage), CategoryBlock(vocab=list(data.classes))),
                       get_x=ArrayGetter(x), get_y=ArrayGetter(x, y, data.classes),
                       splitter=IndexSplitter(list(range(len(data.y_train), len(y)))),
                       item_tfms=[CropPad(h + 2 * pad, pad_mode='zeros'), RandomCrop(h)],
                       batch_tfms=[*aug_transforms(do_flip=data.flip, flip_vert=False, max_rotate=10., min_zoom=0.9, max_zoom=1.1,
                                                   max_lighting=0., max_warp=0., p_affine=1., p_lighting=0., pad_mode='zeros'),
                                   Normalize.from_stats(mean, std, cuda=dev.type == 'cuda')])
    return dblock.dataloaders(list(range(len(y))), bs=bs, num_workers=num_workers, device=dev)

def run(dataset='mnist', bs=256, n_batches=40, num_workers=None, devices=None, threads=None):
    from fastai.torch_core import defaults
    from softsil_nb.data import load_dataset, fetch, DATASETS
    from softsil_nb.loaders import device_dataloaders, channel_stats, BatchAugment
    if dataset in DATASETS: fetch(dataset)
    data = load_dataset(dataset)
    num_workers = defaults.cpus if num_workers is None else num_workers
    devs = devices or (['cpu'] + (['cuda'] if torch.cuda.is_available() else []))
    default_threads = torch.get_num_threads()
    threads = threads or sorted({default_threads, 1}, reverse=True) # torch's default, and one thread (robust when cores are shared)
    mean, std = channel_stats(data.x_train)
    pad = BatchAugment.for_data(data).pad
    rows = []
    for d in devs:
        dev = torch.device(d)
        for th in (threads if dev.type == 'cpu' else [default_threads]):
            torch.set_num_threads(th)
            ours = device_dataloaders(data, bs=bs, seed=0, device=dev, stats=(mean, std)).train
            fa = fastai_dataloaders(data, bs, num_workers, dev, pad, mean, std).train
            r_fa = time_loader(fa, n_batches, dev)
            r_ours = time_loader(ours, n_batches, dev)
            rows.append(dict(device=d, threads=th, ours=r_ours, fastai=r_fa, workers=num_workers))
            print(f'{d} ({th} threads): DeviceDataLoader {r_ours:,.0f} images/s, fastai DataBlock ({num_workers} workers) {r_fa:,.0f} images/s, '
                  f'{r_ours / r_fa:.1f}x', flush=True)
    torch.set_num_threads(default_threads)
    return data, rows

def section(data, rows, args) -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'
    lines = ['## Loader speed', '',
             f'Images per second of one training pipeline on **{data.name}** ({len(data.y_train):,} training images of '
             f'{data.channels}x{data.image_size[0]}x{data.image_size[1]}), batches of {args.bs}, with the same augmentation in both '
             '(random crop of the image padded by 1/8 of its size, rotation up to 10 degrees, zoom 0.9..1.1, flips only where the '
             'task allows them, normalisation).',
             '- `DeviceDataLoader` (softsil_nb.loaders): the data is one uint8 tensor on the device; one gather and one `grid_sample` per batch.',
             "- fastai `DataBlock`: `CropPad` + `RandomCrop` item transforms on PIL images in worker processes, then `aug_transforms` + "
             "`Normalize` batch transforms on the device (fastai's usual recipe).", '',
             '| device | torch threads (main process) | DeviceDataLoader (images/s) | fastai DataBlock (images/s) | fastai workers | speed-up |',
             '|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f"| {r['device']} | {r['threads']} | {r['ours']:,.0f} | {r['fastai']:,.0f} | {r['workers']} | **{r['ours'] / r['fastai']:.1f}x** |")
    thr = f' --threads {args.threads}' if args.threads else ''
    load = ', load average %.1f during the run' % os.getloadavg()[0] if hasattr(os, 'getloadavg') else ''
    lines += ['', 'On the CPU the speed-up depends on how busy the cores are: when other processes share them, torch\'s multithreaded '
              'kernels slow down most, and one intra-op thread (`torch.set_num_threads(1)`) is the faster setting.',
              '', f'Machine: {platform.machine()}, {os.cpu_count()} CPU cores{load}, GPU: {gpu}; '
              f'Python {platform.python_version()}, torch {torch.__version__}; {datetime.date.today().isoformat()}. '
              f'Reproduce: `python benchmarks/loader_speed.py --dataset {args.dataset} --bs {args.bs}{thr} --out BENCHMARKS.md`.', '']
    return '\n'.join(lines)

def write_section(path:Path, text:str):
    "Replace the '## Loader speed' section of `path` (up to the next '## ' heading), or append it; other sections are left alone."
    old = path.read_text() if path.exists() else '# Benchmarks\n\n'
    pat = re.compile(r'^## Loader speed\n.*?(?=^## |\Z)', re.S | re.M)
    new = pat.sub(lambda m: text + '\n', old, count=1) if pat.search(old) else old.rstrip('\n') + '\n\n' + text
    path.write_text(new)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--dataset', default='mnist')
    p.add_argument('--bs', type=int, default=256)
    p.add_argument('--batches', type=int, default=40, help='at least this many batches per measurement (and at least 1 s)')
    p.add_argument('--num-workers', type=int, default=None, help="fastai's worker processes (default: fastai's, min(16, cores))")
    p.add_argument('--devices', default=None, help='comma-separated, e.g. cpu,cuda (default: cpu, and cuda when present)')
    p.add_argument('--threads', default=None, help="comma-separated torch intra-op thread counts for the CPU rows (default: torch's, and 1)")
    p.add_argument('--out', default=None, help="a markdown file whose '## Loader speed' section is (re)written")
    args = p.parse_args(argv)
    data, rows = run(args.dataset, args.bs, args.batches, args.num_workers, args.devices.split(',') if args.devices else None,
                     [int(t) for t in args.threads.split(',')] if args.threads else None)
    text = section(data, rows, args)
    print(text)
    if args.out: write_section(Path(args.out), text)

if __name__ == '__main__': main()
