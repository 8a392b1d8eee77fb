"Tests of softsil_nb.loaders: the device dataset, batched augmentation (against oracles), the P x K sampler, the loader, and fastai's protocol end to end."
import math, pickle, subprocess, sys, warnings
from pathlib import Path
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from hypothesis import given, settings, strategies as st
import matplotlib; matplotlib.use('Agg')
from fastai.vision.all import (Learner, CrossEntropyLossFlat, accuracy, ClassificationInterpretation, load_learner, TensorImage,
                               TensorImageBW, TensorCategory, Category, DataLoaders, default_device, set_seed)
from softsil_nb.data import ImageData, load_dataset
from softsil_nb.loaders import (ArrayDataset, BatchAugment, ClassBalancedSampler, DeviceDataLoader, channel_stats,
                                device_dataloaders)

DEV = default_device()

@pytest.fixture(scope='module')
def digits(): return load_dataset('uci_digits') # ships with scikit-learn: no fetch

def _toy(n=40, c=4, hw=6, seed=0):
    g = np.random.default_rng(seed)
    return ImageData('toy', tuple('abcdefgh'[:c]), g.integers(0, 256, (n, 1, hw, hw), dtype=np.uint8), np.arange(n) % c,
                     g.integers(0, 256, (n // 2, 1, hw, hw), dtype=np.uint8), np.arange(n // 2) % c)

# ---------------------------------------------------------------- ArrayDataset
def test_array_dataset_items_and_errors():
    ds = ArrayDataset(np.arange(96, dtype=np.uint8).reshape(6, 1, 4, 4), [0, 1, 2, 0, 1, 2], classes=('a', 'b', 'c'))
    x, y = ds[4]
    assert type(x) is TensorImageBW and type(y) is TensorCategory and x.shape == (1, 4, 4) and int(y) == 1
    assert ds.decode(ds[4])[1] == 'b' and isinstance(ds.decode(ds[4])[1], Category)
    assert len(ds.items) == 6 and ds.new_empty().x.shape == (0, 1, 4, 4) and ds.new_empty().vocab == ds.vocab
    rgb = ArrayDataset(np.zeros((2, 3, 5, 5), np.uint8), None, ('a',))
    assert rgb.from_items([np.zeros((5, 5, 3), np.uint8)]).x.shape == (1, 3, 5, 5) # HWC accepted
    assert ds.from_items([np.full((8, 8), 200, np.uint8)]).x.shape == (1, 1, 4, 4) # resized
    with pytest.raises(TypeError, match='x must be uint8'): ArrayDataset(np.zeros((2, 1, 4, 4)), classes='a')
    with pytest.raises(ValueError, match='y must have shape'): ArrayDataset(np.zeros((2, 1, 4, 4), np.uint8), [0], classes='a')
    with pytest.raises(ValueError, match='labels must lie in 0..1'): ArrayDataset(np.zeros((2, 1, 4, 4), np.uint8), [0, 2], classes='ab')
    with pytest.raises(TypeError, match='images must be uint8'): ds.from_items([np.zeros((4, 4))])

def test_items_from_pil_and_paths(tmp_path):
    from PIL import Image
    ds = ArrayDataset(np.zeros((1, 1, 4, 4), np.uint8), [0], classes=('a',))
    Image.fromarray(np.full((4, 4), 7, np.uint8)).save(tmp_path/'i.png')
    out = ds.from_items([tmp_path/'i.png', str(tmp_path/'i.png'), Image.open(tmp_path/'i.png')])
    assert out.x.shape == (3, 1, 4, 4) and out.x.eq(7).all() and out.y is None and out.split_idx == 1

# ---------------------------------------------------------------- BatchAugment against oracles
def _oracle(img, dx, dy, fx, fy):
    h, w = img.shape[-2:]; out = np.zeros_like(img)
    for i in range(h):
        for j in range(w):
            si, sj = round(fy * (i - (h - 1) / 2) + (h - 1) / 2 + dy), round(fx * (j - (w - 1) / 2) + (w - 1) / 2 + dx)
            if 0 <= si < h and 0 <= sj < w: out[..., i, j] = img[..., si, sj]
    return out

@settings(max_examples=40, deadline=None)
@given(st.integers(2, 9), st.integers(2, 9), st.integers(-4, 4), st.integers(-4, 4), st.sampled_from([-1., 1.]), st.sampled_from([-1., 1.]))
def test_shift_and_flip_is_an_exact_padded_crop(h, w, dx, dy, fx, fy):
    img = torch.rand(1, 3, h, w, dtype=torch.float64)
    p = {k: torch.tensor([float(v)], dtype=torch.float64) for k, v in dict(angle=0, scale=1, flip_x=fx, flip_y=fy, dx=dx, dy=dy).items()}
    np.testing.assert_allclose(BatchAugment.apply(img, p)[0].numpy(), _oracle(img[0].numpy(), dx, dy, fx, fy), atol=1e-9)

def test_pad_crop_equals_numpy_pad_then_crop():
    img = torch.rand(1, 1, 8, 8, dtype=torch.float64); pad = 3
    padded = np.pad(img[0, 0].numpy(), pad)
    for oy in range(2 * pad + 1):
        for ox in range(2 * pad + 1):
            p = {k: torch.tensor([float(v)], dtype=torch.float64) for k, v in dict(angle=0, scale=1, flip_x=1, flip_y=1, dx=ox - pad, dy=oy - pad).items()}
            np.testing.assert_allclose(BatchAugment.apply(img, p)[0, 0].numpy(), padded[oy:oy + 8, ox:ox + 8], atol=1e-9)

def test_rotation_and_zoom():
    sq = torch.rand(2, 1, 7, 7, dtype=torch.float64)
    base = dict(scale=torch.ones(2, dtype=torch.float64), flip_x=torch.ones(2, dtype=torch.float64), flip_y=torch.ones(2, dtype=torch.float64),
                dx=torch.zeros(2, dtype=torch.float64), dy=torch.zeros(2, dtype=torch.float64))
    for k in (1, 2, 3):
        out = BatchAugment.apply(sq, dict(base, angle=torch.full((2,), k * math.pi / 2, dtype=torch.float64)))
        torch.testing.assert_close(out, torch.rot90(sq, k=k, dims=(2, 3)))
    # a zoom by 2 about the centre: the output's centre pixel is the input's, its corner is inside the image
    out = BatchAugment.apply(sq, dict(base, angle=torch.zeros(2, dtype=torch.float64), scale=torch.full((2,), 2., dtype=torch.float64)))
    torch.testing.assert_close(out[..., 3, 3], sq[..., 3, 3])
    # rectangular images: a rotation keeps the physical angle (a grid built in pixel units)
    th = torch.randn(5, 2, 3)
    torch.testing.assert_close(BatchAugment.grid(th, 5, 11), F.affine_grid(th, [5, 1, 5, 11], align_corners=False), atol=1e-5, rtol=0)

def test_parameters_are_per_sample_and_seeded():
    a = BatchAugment(pad=3, degrees=15, scale=(0.8, 1.2), seed=5)
    p = a.sample_params(4000, 'cpu')
    assert set(p['dx'].tolist()) == set(map(float, range(-3, 4))) and set(p['flip_x'].tolist()) == {1.} and set(p['flip_y'].tolist()) == {1.}
    assert p['angle'].abs().max() <= math.radians(15) + 1e-6 and 0.8 <= p['scale'].min() and p['scale'].max() <= 1.2
    assert abs(p['angle'].mean()) < 0.02 and p['angle'].std() > 0.1 and len(p['scale'].unique()) > 3000
    f = BatchAugment(flip=True, vflip=True, seed=0).sample_params(4000, 'cpu')
    assert abs((f['flip_x'] < 0).float().mean() - 0.5) < 0.05 and abs((f['flip_y'] < 0).float().mean() - 0.5) < 0.05
    q, r = BatchAugment(seed=9), BatchAugment(seed=9)
    for _ in range(3): torch.testing.assert_close(q.sample_params(10, 'cpu'), r.sample_params(10, 'cpu'))
    assert not torch.equal(BatchAugment(seed=1).sample_params(10, 'cpu')['angle'], BatchAugment(seed=2).sample_params(10, 'cpu')['angle'])
    torch.manual_seed(0); s1 = BatchAugment().seed; torch.manual_seed(0); assert BatchAugment().seed == s1

def test_flips_only_where_allowed(digits):
    assert not BatchAugment.for_data(digits).flip # digits: a mirrored 3 is not a 3
    fash = ImageData('f', ('a',), np.zeros((2, 1, 28, 28), np.uint8), np.zeros(2, int), np.zeros((1, 1, 28, 28), np.uint8), np.zeros(1, int), flip=True)
    assert BatchAugment.for_data(fash).flip and BatchAugment.for_data(fash).pad == 4
    img = TensorImageBW(torch.arange(16.).view(1, 1, 4, 4).repeat(64, 1, 1, 1))
    out = BatchAugment(pad=0, degrees=0, scale=(1, 1), flip=True, seed=0)(img, split_idx=0)
    same, mirrored = (out == img).flatten(1).all(1), (out == img.flip(-1)).flatten(1).all(1)
    assert (same | mirrored).all() and same.any() and mirrored.any()

def test_views_are_view_major_and_training_only():
    x = TensorImageBW(torch.rand(5, 1, 6, 6))
    v = BatchAugment(pad=0, degrees=0, scale=(1, 1), n_views=3)(x, split_idx=0)
    assert v.shape == (15, 1, 6, 6) and type(v) is TensorImageBW
    for i in range(3): torch.testing.assert_close(v[5 * i:5 * (i + 1)], x) # view-major
    w = BatchAugment(n_views=2, seed=0)(x, split_idx=0)
    assert not torch.allclose(w[:5], w[5:])
    assert BatchAugment(n_views=2)(x, split_idx=1) is x # evaluation data is left alone
    with pytest.raises(ValueError, match='n_views'): BatchAugment(n_views=0)

# ---------------------------------------------------------------- the P x K sampler
@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=2, max_size=9), st.integers(1, 4), st.integers(2, 5), st.integers(0, 1000))
def test_sampler_balance(sizes, p, k, seed):
    y = torch.from_numpy(np.repeat(np.arange(len(sizes)), sizes))
    if p > len(sizes):
        with pytest.raises(ValueError, match=f'only {len(sizes)} classes'): ClassBalancedSampler(p, k)(y)
        return
    s = ClassBalancedSampler(p, k, n_batches=12)
    idx = s(y, torch.Generator().manual_seed(seed))
    assert len(idx) == 12 * p * k and idx.min() >= 0 and idx.max() < len(y)
    for b in idx.view(12, p * k):
        cnt = torch.bincount(y[b], minlength=len(sizes))
        assert sorted(cnt[cnt > 0].tolist()) == [k] * p # p classes, k each: every class present has >= 2
        for c in cnt.nonzero().flatten().tolist(): # no image twice in a batch unless its class is smaller than k
            assert len(set(b[y[b] == c].tolist())) == min(k, sizes[c])
    visits = torch.bincount(y[idx], minlength=len(sizes)) // k
    assert visits.max() - visits.min() <= 1
    assert torch.equal(s(y, torch.Generator().manual_seed(seed)), idx)

def test_sampler_arguments():
    with pytest.raises(ValueError, match='k must be an int >= 2'): ClassBalancedSampler(4, 1)
    with pytest.raises(ValueError, match='p must be an int >= 1'): ClassBalancedSampler(0, 2)
    assert ClassBalancedSampler(4, 2).epoch_batches(100) == 12 and ClassBalancedSampler(4, 2).epoch_batches(3) == 1

# ---------------------------------------------------------------- the loader
def test_epoch_counts_shapes_and_normalisation(digits):
    dls = device_dataloaders(digits, bs=100, seed=0)
    assert dls.device == DEV and dls.train.dataset.device.type == DEV.type
    seen = torch.cat([y for _, y in dls.train])
    assert len(dls.train) == 1438 // 100 and len(seen) == 1400 # drop_last
    xs = torch.cat([x for x, _ in dls.valid]); ys = torch.cat([y for _, y in dls.valid])
    assert xs.shape == (359, 1, 8, 8) and xs.dtype == torch.float32 and torch.equal(ys.cpu(), torch.from_numpy(digits.y_test))
    mean, std = channel_stats(digits.x_train)
    torch.testing.assert_close(xs.cpu() * std + mean, torch.from_numpy(digits.x_test).float() / 255, atol=1e-5, rtol=0) # exact, not augmented
    tr = torch.cat([x for x, _ in device_dataloaders(digits, bs=100, seed=0, augment=False).train])
    assert abs(tr.mean()) < 0.02 and abs(tr.std() - 1) < 0.02

def test_shuffled_epoch_has_no_repeats(digits):
    dl = device_dataloaders(digits, bs=64, seed=0, augment=False).train
    i1, i2 = dl.get_idxs(), dl.get_idxs()
    assert sorted(i1.tolist()) == list(range(1438)) and not torch.equal(i1, i2)

def test_seeded_runs_repeat(digits):
    def run(seed):
        dl = device_dataloaders(digits, bs=64, seed=seed, n_views=2).train
        return [b for _ in range(2) for b in dl] # two epochs
    a, b, c = run(3), run(3), run(4)
    for (xa, ya), (xb, yb) in zip(a, b): assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(a[0][1], c[0][1])
    set_seed(11); d = list(device_dataloaders(digits, bs=64).train)
    set_seed(11); e = list(device_dataloaders(digits, bs=64).train)
    assert all(torch.equal(x, y) for (x, _), (y, _) in zip(d, e))

def test_pk_batches(digits):
    dls = device_dataloaders(digits, sampler=ClassBalancedSampler(5, 4), seed=0, n_views=2)
    assert dls.train.bs == 20 and len(dls.train) == 1438 // 20
    for x, y in dls.train:
        assert x.shape == (40, 1, 8, 8) and y.shape == (20,)
        assert sorted(torch.bincount(y.cpu(), minlength=10).tolist()) == [0] * 5 + [4] * 5

def test_views_keep_labels_and_order(digits):
    dls = device_dataloaders(digits, bs=32, n_views=2, augment=False, seed=0)
    x, y = dls.one_batch()
    assert x.shape == (64, 1, 8, 8) and y.shape == (32,) and torch.equal(x[:32], x[32:])
    xv, yv = dls.valid.one_batch(); assert xv.shape[0] == yv.shape[0] == 64 # evaluation: one view

def test_validation_split_and_small_subsets(digits):
    sub = digits.subset(3, seed=0, valid_k=5)
    dls = device_dataloaders(sub, bs=128, valid='valid', seed=0)
    assert dls.train.bs == 30 and len(dls.train) == 1 and len(dls.valid.dataset) == 50
    with pytest.raises(ValueError, match='needs a validation set'): device_dataloaders(digits, valid='valid')
    with pytest.raises(ValueError, match="valid must be 'test' or 'valid'"): device_dataloaders(digits, valid='train')

def test_loader_rejects_other_datasets():
    with pytest.raises(TypeError, match='ArrayDataset'): DeviceDataLoader([1, 2, 3])

def test_device_moves(digits):
    dls = device_dataloaders(digits, bs=16, device='cpu', seed=0)
    assert dls.train.dataset.device.type == 'cpu' and dls.one_batch()[0].device.type == 'cpu'
    dls.to(DEV); assert dls.train.dataset.x.device.type == DEV.type and dls.one_batch()[0].device.type == DEV.type

# ---------------------------------------------------------------- fastai end to end
class TinyNet(nn.Module):
    "A small CNN for 8x8 digits (a test model: the library's models live in softsil_nb.models)."
    def __init__(self, c=10):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                                  nn.Conv2d(32, 64, 3, padding=1, stride=2), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(64, c)
    def forward(self, x): return self.head(self.body(x))

@pytest.fixture(scope='module')
def learn(digits, tmp_path_factory):
    set_seed(0)
    dls = device_dataloaders(digits, bs=64, seed=0, path=tmp_path_factory.mktemp('learner'))
    l = Learner(dls, TinyNet(), loss_func=CrossEntropyLossFlat(), metrics=accuracy)
    with l.no_bar(), l.no_logging(): l.fit_one_cycle(4, 3e-2)
    return l

def test_fit_learns(learn):
    loss, acc = learn.validate()
    assert acc > 0.7, acc # chance is 0.1 (0.9 seen)

def test_get_preds_order_and_interpretation(learn, digits):
    with learn.no_bar():
        preds, targs = learn.get_preds()
        assert preds.shape == (359, 10) and torch.equal(targs.cpu(), torch.from_numpy(digits.y_test))
        interp = ClassificationInterpretation.from_learner(learn)
        cm = interp.confusion_matrix()
        assert cm.sum() == 359 and np.array_equal(cm.sum(1), np.bincount(digits.y_test, minlength=10))
        assert np.trace(cm) == (preds.argmax(1) == targs.cpu()).sum().item()
        losses, idx = interp.top_losses(5); assert len(idx) == 5
        interp.plot_top_losses(4); interp.plot_confusion_matrix()
        learn.show_results(max_n=4)
    learn.dls.show_batch(max_n=4); learn.dls.valid.show_batch(max_n=4)
    x, y, its = learn.dls.train.show_batch(max_n=3, show=False)
    assert len(its) == 3 and its[0][1] in digits.classes

def test_test_dl_and_predict(learn, digits):
    items = list(digits.x_test[:12])
    with learn.no_bar():
        p_all, _ = learn.get_preds()
        p_test, _ = learn.get_preds(dl=learn.dls.test_dl(items))
        torch.testing.assert_close(p_test, p_all[:12])
        lab = learn.dls.test_dl([(x, int(y)) for x, y in zip(digits.x_test[:12], digits.y_test[:12])], with_labels=True)
        assert torch.equal(torch.cat([y for _, y in lab]).cpu(), torch.from_numpy(digits.y_test[:12]))
        cls, i, probs = learn.predict(digits.x_test[0])
    assert isinstance(cls, str) and cls == digits.classes[int(i)] and int(i) == int(p_all[0].argmax())
    torch.testing.assert_close(probs, p_all[0].cpu())

def test_export_and_load_learner(learn, digits):
    learn.export('digits.pkl')
    assert len(learn.dls.train.dataset) == 1438 # export leaves the learner's data in place
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        l2 = load_learner(learn.path/'digits.pkl')
    assert l2.dls.device.type == 'cpu' and len(l2.dls.train.dataset) == 0 and list(l2.dls.vocab) == list(digits.classes)
    with l2.no_bar(), learn.no_bar():
        cls, i, probs = l2.predict(torch.from_numpy(digits.x_test[5][0]))
        ref = learn.predict(digits.x_test[5])
        assert cls == ref[0] and torch.allclose(probs, ref[2].cpu(), atol=1e-5)
        p2, _ = l2.get_preds(dl=l2.dls.test_dl(list(digits.x_test[:20])))
    assert p2.shape == (20, 10)

def test_loaders_pickle(digits):
    dls = device_dataloaders(digits, bs=16, seed=0, device='cpu')
    b1 = dls.train.one_batch()
    again = pickle.loads(pickle.dumps(dls))
    torch.testing.assert_close(again.train.one_batch(), b1) # seeds travel, generators are rebuilt

# ---------------------------------------------------------------- the benchmark script runs
def test_loader_speed_script_smoke(tmp_path):
    root = Path(__file__).resolve().parent.parent
    r = subprocess.run([sys.executable, str(root/'benchmarks'/'loader_speed.py'), '--dataset', 'uci_digits', '--batches', '3', '--bs', '32',
                        '--num-workers', '0', '--devices', 'cpu', '--out', str(tmp_path/'b.md')], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    text = (tmp_path/'b.md').read_text()
    assert '## Loader speed' in text and 'DeviceDataLoader' in text and 'DataBlock' in text

# ---------------------------------------------------------------- per-sample AutoAugment
from softsil_nb.loaders import PerSampleAutoAugment, autoaugment_policy

def _drawn(policy, draw):
    "torchvision's own AutoAugment, made to use the draw we made for one image (its get_params is the only random step)."
    from torchvision.transforms import AutoAugment, AutoAugmentPolicy, InterpolationMode
    class Drawn(AutoAugment):
        def get_params(self, n): return draw
    return Drawn(AutoAugmentPolicy(policy), InterpolationMode.NEAREST)

@pytest.mark.parametrize('policy', ['imagenet', 'cifar10', 'svhn'])
def test_autoaugment_per_sample_equals_torchvision_on_each_sample(policy):
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (96, 3, 20, 28), generator=g, dtype=torch.uint8) # not square: TranslateX/Y use W/H
    x[48:] = x[0] # identical images in one batch
    aa = PerSampleAutoAugment(policy, seed=3)
    p = aa.sample_params(len(x)); out = aa.apply(x, p)
    assert out.dtype == torch.uint8 and out.shape == x.shape
    for i in range(len(x)):
        assert torch.equal(out[i], _drawn(policy, (int(p['policy'][i]), p['probs'][i], p['signs'][i]))(x[i])), i
    same = {out[i].numpy().tobytes() for i in range(48, 96)}
    assert len(same) > 8 # the identical inputs got different operations
    assert len({tuple(t) for t in aa.ops(p, (20, 28))[48:]}) > 8

def test_torchvision_v2_autoaugment_on_a_batch_applies_one_operation():
    "Why we need our own: torchvision's v2 AutoAugment on a batch tensor gives every image the same operations."
    from torchvision.transforms import v2
    x = torch.randint(0, 256, (1, 3, 20, 20), dtype=torch.uint8).repeat(32, 1, 1, 1)
    torch.manual_seed(0)
    outs = [v2.AutoAugment()(x) for _ in range(10)]
    assert all(len({o[i].numpy().tobytes() for i in range(32)}) == 1 for o in outs)
    assert len({o[0].numpy().tobytes() for o in outs}) > 1 # it is random, per call

def test_autoaugment_draws_and_views():
    aa = PerSampleAutoAugment('imagenet', seed=0)
    p = aa.sample_params(25000)
    counts = torch.bincount(p['policy'], minlength=25).float()
    assert counts.min() > 850 and counts.max() < 1150 # 25 sub-policies, uniform (1000 expected each; 5 sd is about 155)
    assert p['probs'].min() >= 0 and p['probs'].max() < 1 and set(p['signs'].unique().tolist()) == {0, 1}
    x = TensorImage(torch.randint(0, 256, (16, 3, 12, 12), dtype=torch.uint8))
    v = PerSampleAutoAugment(n_views=2, seed=0)(x, split_idx=0)
    assert v.shape == (32, 3, 12, 12) and isinstance(v, TensorImage)
    assert sum(not torch.equal(v[i], v[16 + i]) for i in range(16)) > 4 # each view its own draw
    a, b = PerSampleAutoAugment(seed=5), PerSampleAutoAugment(seed=5)
    assert torch.equal(a(x, split_idx=0), b(x, split_idx=0)) # seeded
    assert torch.equal(PerSampleAutoAugment(seed=5)(x, split_idx=1), x) # not on evaluation batches
    assert torch.equal(pickle.loads(pickle.dumps(a)).sample_params(4)['policy'], PerSampleAutoAugment(seed=5).sample_params(4)['policy'])
    with pytest.raises(TypeError, match='uint8'): a(TensorImage(x.float()), split_idx=0)
    with pytest.raises(ValueError, match='policy must be one of'): PerSampleAutoAugment('imagenet21k')
    assert autoaugment_policy('cifar100') == 'cifar10' and autoaugment_policy('flowers102') == 'imagenet'

def test_device_dataloaders_autoaugment():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (40, 3, 16, 16)).astype(np.uint8); y = np.repeat(np.arange(4), 10)
    d = ImageData('cifar10', tuple('abcd'), x, y, x[:8], y[:8], flip=True)
    dls = device_dataloaders(d, bs=16, n_views=2, augment='autoaugment', seed=0, device='cpu')
    names = [type(t).__name__ for t in dls.train.after_batch.fs]
    assert names == ['PerSampleAutoAugment', 'IntToFloatTensor', 'BatchAugment', 'Normalize']
    aa, crop = dls.train.after_batch.fs[0], dls.train.after_batch.fs[2]
    assert aa.policy == 'cifar10' and aa.n_views == 2 and crop.n_views == 1 and crop.degrees == 0 and crop.flip
    xb, yb = dls.one_batch()
    assert xb.shape == (32, 3, 16, 16) and yb.shape == (16,)
    again = device_dataloaders(d, bs=16, n_views=2, augment='autoaugment', seed=0, device='cpu')
    assert torch.equal(xb, again.one_batch()[0]) # seeded
    assert [type(t).__name__ for t in dls.valid.after_batch.fs] == ['IntToFloatTensor', 'Normalize']
    with pytest.raises(ValueError, match="'autoaugment'"): device_dataloaders(d, augment='randaugment', device='cpu')
