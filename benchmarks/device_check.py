"""One short script for a GPU machine: correctness on CUDA, then timings of the loss and of one training epoch.

    python benchmarks/device_check.py            # exits non-zero when a check fails; prints a markdown report
    python benchmarks/device_check.py --cpu-smoke  # no GPU: only the fused-kernel checks, on the CPU (float32 against float64)

Checks (each against the CPU float64 result or an exact oracle): the exact silhouette on CUDA equals the CPU one; the
soft silhouette loss (every metric, classsum and pairwise, with num_classes) equals its CPU float64 value and its
gradient too; under CUDA bf16 and fp16 autocast the loss is finite and within 1e-2 of float32; the compiled loss
(num_classes, fullgraph) equals the eager one; SupCon equals pytorch-metric-learning's on CUDA; fastai's to_fp16()
trains ce+supcon+sil on the device-resident loader; per-sample AutoAugment on CUDA equals it on the CPU. Timings:
benchmarks/loss_speed.py on CUDA at B up to 16384, seconds per epoch of ce, ce+sil and ce+supcon+sil on mnist (50 per class
and the full training split), and seconds per step of EfficientNet-B0 with per-sample AutoAugment at 32 and 128 px (the
paper-original setting), with the GPU hours of that suite they give.
"""
import sys, time, statistics
import torch

def fused_checks(check, dev='cuda'):
    "The fused class-sum kernel on `dev` (float64 and float32) against the CPU float64 autograd graph (fused=False): a, b, s and their gradient."
    from softsil_nb.silhouette import soft_silhouette_samples, FUSED_SOFT_MINS, DENOMINATORS
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1024, 64, generator=g, dtype=torch.float64) * 2; y = torch.randint(0, 50, (1024,), generator=g)
    w = torch.randn(3, 1024, generator=g, dtype=torch.float64)
    def run(t, yy, ww, **kw):
        t = t.clone().requires_grad_(); r = soft_silhouette_samples(t, yy, method='classsum', num_classes=50, **kw)
        (r.intra * ww[0] + r.nearest_other * ww[1] + r.silhouette * ww[2]).sum().backward()
        return [v.detach().double().cpu() for v in r[:3]] + [t.grad.double().cpu()]
    for m, norm in (('cosine', True), ('sqeuclidean', True), ('sqeuclidean', False)):
        for sm in FUSED_SOFT_MINS:
            for den in DENOMINATORS:
                kw = dict(metric=m, normalize=norm, soft_min=sm, denominator=den, temperature=0.1)
                ref = run(x, y, w, fused=False, **kw)
                for dt, tol in ((torch.float64, 1e-9), (torch.float32, 2e-3)):
                    got = run(x.to(dev, dt), y.to(dev), w.to(dev, dt), **kw)
                    err = max(((u - v).abs().max() / (1 + v.abs().max())).item() for u, v in zip(got, ref))
                    check(f'fused {m}/normalize={norm}/{sm}/{den} {dev} {dt} == cpu float64 graph (a, b, s, grad; rel. err {err:.1e})', err < tol)

def fused_timing(dev='cuda', sizes=(4096, 16384, 65536), classes=(10, 100, 1000)):
    "The loss against its floor on `dev` (see benchmarks/loss_speed.py --floor)."
    import subprocess
    subprocess.run([sys.executable, 'benchmarks/loss_speed.py', '--floor', '--device', dev, '--sizes', *map(str, sizes),
                    '--classes', *map(str, classes)], check=False)

def main():
    if '--cpu-smoke' in sys.argv:                                        # no GPU here: the fused checks on the CPU, quickly
        fails = []
        def check(name, ok):
            print(f'- {"ok  " if ok else "FAIL"} {name}', flush=True)
            if not ok: fails.append(name)
        fused_checks(check, 'cpu')
        print(f'\n{len(fails)} failed'); sys.exit(1 if fails else 0)
    if not torch.cuda.is_available(): sys.exit('no CUDA device: this script is for a GPU machine')
    from softsil_nb.losses import SoftSilhouetteLoss, SupConLoss
    from softsil_nb.silhouette import silhouette_samples, METRICS
    from pytorch_metric_learning import losses as pml_losses
    dev, fails = 'cuda', []
    def check(name, ok):
        print(f'- {"ok  " if ok else "FAIL"} {name}', flush=True)
        if not ok: fails.append(name)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 32, generator=g, dtype=torch.float64); y = torch.randint(0, 20, (2000,), generator=g) * 3 - 7
    for m in METRICS:
        check(f'exact silhouette {m} cuda == cpu', torch.allclose(silhouette_samples(x.to(dev), y.to(dev), m).cpu(), silhouette_samples(x, y, m), atol=1e-9))
    for m in METRICS:
        for meth in (['classsum', 'pairwise'] if m != 'euclidean' else ['pairwise']):
            for nc in (None, 20):
                yy = torch.randint(0, 20, (512,), generator=g); z = torch.randn(512, 64, generator=g, dtype=torch.float64)
                l = SoftSilhouetteLoss(metric=m, method=meth, num_classes=nc)
                zc = z.clone().requires_grad_(); zg = z.to(dev).requires_grad_()
                a = l(zc, yy); a.backward(); b = l(zg, yy.to(dev)); b.backward()
                check(f'loss {m}/{meth}/num_classes={nc} cuda == cpu (value, grad)', abs(a.item() - b.item()) < 1e-10 and torch.allclose(zc.grad, zg.grad.cpu(), atol=1e-10))
    lin = torch.nn.Linear(64, 128).to(dev); xi = torch.randn(4096, 64, device=dev); yi = torch.randint(0, 100, (4096,), device=dev)
    ref = SoftSilhouetteLoss()(lin(xi), yi)
    for dt in (torch.bfloat16, torch.float16):
        with torch.autocast('cuda', dtype=dt): v = SoftSilhouetteLoss()(lin(xi), yi)
        check(f'autocast {dt}: finite, within 1e-2 of float32', bool(torch.isfinite(v)) and abs(v.item() - ref.item()) < 1e-2)
    lc = torch.compile(SoftSilhouetteLoss(num_classes=100, check_inputs=False), fullgraph=True)
    e = torch.randn(4096, 128, device=dev)
    check('compiled == eager', abs(lc(e, yi).item() - SoftSilhouetteLoss(num_classes=100)(e, yi).item()) < 1e-5)
    yy = torch.arange(64, device=dev).repeat(8)
    e = torch.randn(512, 128, device=dev, dtype=torch.float64)
    check('SupCon == PML SupConLoss on cuda', abs(SupConLoss(0.1)(e, yy).item() - pml_losses.SupConLoss(temperature=0.1)(e, yy).item()) < 1e-9)
    # fastai: to_fp16 with the combined loss, on the device-resident loader
    from softsil_nb.data import load_dataset
    from softsil_nb.loaders import device_dataloaders
    from softsil_nb.learner import method_learner, fit_method
    data = load_dataset('uci_digits').subset(50, seed=0)
    learn = method_learner(device_dataloaders(data, bs=64, n_views=2, seed=0), 'ce+supcon+sil').to_fp16()
    with learn.no_bar(), learn.no_logging(): fit_method(learn, 3, 3e-3)
    p, t = learn.get_preds()
    check('to_fp16 ce+supcon+sil trains on CUDA (accuracy > 0.3)', (p.argmax(1) == t).float().mean().item() > 0.3)
    fused_checks(check, dev)
    print('\n## Loss speed on CUDA\n', flush=True)
    import subprocess
    subprocess.run([sys.executable, 'benchmarks/loss_speed.py', '--device', 'cuda', '--sizes', '1024', '4096', '8192', '16384'], check=False)
    print('\n## The fused loss against its floor on CUDA\n', flush=True)
    fused_timing(dev)
    print('\n## Seconds per epoch on CUDA (mnist)\n\n| method | 50 per class | full training split |\n|---|---|---|', flush=True)
    mn = load_dataset('mnist')
    for m in ('ce', 'ce+sil', 'ce+supcon+sil'):
        row = []
        for d in (mn.subset(50, seed=0), mn):
            views = 2 if 'supcon' in m else 1
            lr_ = method_learner(device_dataloaders(d, bs=256, n_views=views, seed=0), m)
            with lr_.no_bar(), lr_.no_logging():
                lr_.fit(1, 1e-3); torch.cuda.synchronize(); t0 = time.perf_counter(); lr_.fit(2, 1e-3); torch.cuda.synchronize()
            row.append((time.perf_counter() - t0) / 2)
        print(f'| {m} | {row[0]:.3f} | {row[1]:.3f} |', flush=True)
    efficientnet(check)
    print(f'\n{len(fails)} failed' + (': ' + ', '.join(fails) if fails else ''))
    sys.exit(1 if fails else 0)

# training images per class-balanced epoch of each paper-original dataset (Caltech: our stratified 80/20 split, about)
PAPER_ORIGINAL_TRAIN = dict(cifar10=50000, cifar100=50000, stanford_cars=8144, caltech101=6942, caltech256=24486, fgvc_aircraft=6667, flowers102=2040)

def efficientnet(check, bs=128, steps=20, device='cuda'):
    """The paper-original setting on CUDA: per-sample AutoAugment on CUDA equals it on the CPU; then seconds per training step
    (loader, AutoAugment and crop included) of EfficientNet-B0 at 32 px (CIFAR) and 128 px (the five others), on random
    images (the device has no internet), and the GPU hours of `softsil suite paper-original` that these step times give."""
    import numpy as np
    from softsil_nb.data import ImageData
    from softsil_nb.loaders import device_dataloaders, PerSampleAutoAugment
    from softsil_nb.learner import method_learner, get_method
    from softsil_nb.experiments import PAPER_ORIGINAL_BUDGET, PAPER_ORIGINAL_DATASETS
    from softsil_nb.experiments import SkipValidation
    from fastai.callback.channelslast import ChannelsLast
    cuda = device == 'cuda'
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (256, 3, 64, 64), generator=g, dtype=torch.uint8)
    aa = PerSampleAutoAugment(seed=0); p = aa.sample_params(len(x))
    a, b = aa.apply(x, p), aa.apply(x.to(device), p).cpu()
    check(f'per-sample AutoAugment cuda == cpu (pixels that differ: {(a != b).float().mean().item():.2e}, < 1e-3)', (a != b).float().mean().item() < 1e-3)
    print(f'\n## EfficientNet-B0 on CUDA (paper-original: AutoAugment, batches of {bs})\n\n| px | method | s/step | loader s/step | peak GiB |\n|---|---|---|---|---|', flush=True)
    per_step = {}
    for px, nc in ((32, 100), (128, 200)):
        rng = np.random.default_rng(0)
        n = bs * steps
        xs = rng.integers(0, 256, (n, 3, px, px), dtype=np.uint8); ys = np.arange(n) % nc
        data = ImageData('cifar100' if px == 32 else 'caltech256', tuple(map(str, range(nc))), xs, ys, xs[:512], ys[:512], flip=True)
        for m in ('ce', 'ce+sil', 'supcon2', 'ce+supcon+sil'):
            dls = device_dataloaders(data, bs=bs, n_views=get_method(m).views, augment='autoaugment', seed=0, device=device)
            learn = method_learner(dls, m, arch='efficientnet_b0', feat_dim=1280, metrics=[], cbs=[ChannelsLast(), SkipValidation()])
            with learn.no_bar(), learn.no_logging():
                learn.fit(1, 1e-3); sync()
                if cuda: torch.cuda.reset_peak_memory_stats()
                t0 = time.perf_counter(); learn.fit(1, 1e-3); sync(); fit_s = (time.perf_counter() - t0) / len(dls.train)
            t0 = time.perf_counter()
            for _ in dls.train: pass
            sync(); load_s = (time.perf_counter() - t0) / len(dls.train)
            per_step[px, m] = fit_s
            print(f'| {px} | {m} | {fit_s:.4f} | {load_s:.4f} | {torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"):.1f} |', flush=True)
    # SkipValidation: the fits above are training steps only (one evaluation pass per run is not counted)
    ep, ep2 = PAPER_ORIGINAL_BUDGET['epochs'], PAPER_ORIGINAL_BUDGET['stage2_epochs']
    hours = {}
    for d in PAPER_ORIGINAL_DATASETS:
        px = 32 if d.startswith('cifar') else 128; st = PAPER_ORIGINAL_TRAIN[d] // bs
        # 8 methods: ce, ce+proxynca and ce+center cost about a ce step; ce+sil its own; the four SupCon methods about a ce+supcon+sil step
        s = st * ep * (3 * per_step[px, 'ce'] + per_step[px, 'ce+sil'] + 4 * per_step[px, 'ce+supcon+sil']) + 2 * st * ep2 * per_step[px, 'ce']
        hours[d] = s / 3600
    print('\nGPU hours of one seed of paper-original from these step times (training steps only): '
          + ', '.join(f'{d} {h:.1f}' for d, h in hours.items()) + f'; all 3 seeds: {3 * sum(hours.values()):.0f} h', flush=True)

if __name__ == '__main__': main()
