"The fastai layer: every method trains on scikit-learn's digits; metrics against scikit-learn and direct implementations; callbacks, export, MixUp."
import math
import pickle
import warnings
from dataclasses import asdict
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from hypothesis import assume, given, settings, strategies as st
from sklearn import metrics as skm
from sklearn.datasets import load_digits
from sklearn.model_selection import LeaveOneOut, cross_val_predict
from sklearn.neighbors import KNeighborsClassifier
from torch.utils.data import TensorDataset
from fastai.callback.core import Callback
from fastai.callback.mixup import MixUp, CutMix
from fastai.data.core import DataLoaders
from fastai.learner import load_learner
from softsil_nb.losses import CombinedLoss, SoftSilhouetteLoss, SupConLoss
from softsil_nb.models import create_model
from softsil_nb.learner import (METHODS, Method, get_method, methods_markdown, method_learner, fit_method, fit_two_stage,
                                set_stage, MultiViewCallback, RandomShiftNoise, LossTermMetric, SilhouetteMetric, KNNAccuracy,
                                RetrievalMetric, WithLossParams, LinearProbeCallback, accuracy, LogitsCrossEntropy, PMLTermCallback,
                                LossTermsCallback, method_loss)
from softsil_nb.callbacks import SoftSilhouetteCallback, SupConCallback

SMALL = dict(arch_kwargs=dict(widths=(16, 32)), feat_dim=32, proj_dim=32)

class TensorItems(TensorDataset):
    "A TensorDataset that `Learner.export` can empty."
    def new_empty(self): return type(self)(*(t[:0] for t in self.tensors))

@pytest.fixture(autouse=True, scope='module')
def one_thread():
    "Tiny models: one thread is fastest and does not fight parallel test processes for the cores."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

def make_dls(n_valid=360, bs=64, seed=0, ds=TensorItems):
    d = load_digits()
    x, y = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16, torch.tensor(d.target)
    p = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    return DataLoaders.from_dsets(ds(x[p[n_valid:]], y[p[n_valid:]]), ds(x[p[:n_valid]], y[p[:n_valid]]), bs=bs,
                                  device='cpu', num_workers=0)

@pytest.fixture(scope='module')
def dls(): return make_dls()

def quiet_fit(learn, fn, *args, **kw):
    with learn.no_bar(), learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return fn(*args, **kw)

def labels_and_preds(learn, dls):
    "Predicted labels from the logits, and the targets, over the validation set (independent of the library's metrics)."
    learn.model.eval()
    ps, ys = [], []
    with torch.no_grad():
        for x, y in dls.valid:
            ps.append(learn.model(x)[0].argmax(1)); ys.append(y)
    return torch.cat(ps), torch.cat(ys)

# ---------------------------------------------------------------- the table
def test_methods_table():
    assert list(METHODS) == ['ce', 'ce+sil', 'ce+supcon', 'supcon2', 'supcon+sil', 'ce+supcon+sil', 'ce+triplet',
                             'ce+proxyanchor', 'arcface', 'ce+proxynca', 'ce+center']
    for name, m in METHODS.items():
        assert m.name == name and m.description
        assert Method(**asdict(m)) == m                                     # serialisable whole
        assert m.views == (2 if m.supcon > 0 else 1)
        assert (m.stages == 2) == (name in ('supcon2', 'supcon+sil'))
        if m.stages == 2: assert m.weights(0)['ce'] == 0 and m.weights(1) == dict(ce=1., supcon=0., sil=0., pml=0.)
    assert METHODS['ce+supcon+sil'].weights(0) == dict(ce=1., supcon=1., sil=3., pml=0.)
    assert {m.pml_kind for m in METHODS.values()} == {None, 'triplet', 'proxyanchor', 'arcface', 'proxynca', 'center'}
    md = methods_markdown().splitlines()
    assert len(md) == 2 + len(METHODS) and all(f'`{n}`' in md[i + 2] for i, n in enumerate(METHODS))
    assert md[0].count('|') == md[2].count('|')

@pytest.mark.parametrize('kw, msg', [(dict(ce=-1), 'weight ce'), (dict(ce=0), 'all loss weights are 0'), (dict(stages=3), 'stages'),
                                     (dict(views=0), 'views'), (dict(pml=1), 'pml_kind'), (dict(pml_kind='triplet'), 'pml_kind'),
                                     (dict(ce=1, supcon=1, stages=2), 'stage-1 ce must be 0'), (dict(classifier='knn'), 'classifier'),
                                     (dict(ce=1, pml=1, pml_kind='arcface', classifier='pml_cosine'), 'pml_cosine'),
                                     (dict(ce=float('nan')), 'weight ce'), (dict(stages=True), 'stages'),
                                     (dict(sil=True), 'weight sil')])
def test_method_validation(kw, msg):
    with pytest.raises(ValueError, match=msg): Method('bad', **kw)

def test_get_method():
    assert get_method('ce') is METHODS['ce'] and get_method(METHODS['arcface']) is METHODS['arcface']
    with pytest.raises(ValueError, match="unknown method 'cesil'.*known methods: ce, ce\\+sil"): get_method('cesil')
    with pytest.raises(TypeError, match='method must be'): get_method(3)

# ---------------------------------------------------------------- every method trains
@pytest.mark.parametrize('name', list(METHODS))
def test_every_method_trains(dls, name):
    torch.manual_seed(0)
    learn = method_learner(dls, name, **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with learn.no_bar(), learn.no_logging(): before = learn.validate()[0]         # stage-1 loss, untrained
    hist = quiet_fit(learn, fit_method, learn, 3, 1e-2, epochs2=2)
    m = METHODS[name]
    assert len(hist) == m.stages
    s1 = dict(zip(hist[0]['names'], hist[0]['values'][-1]))
    assert s1['valid_loss'] < before, (name, before, s1)                                  # the (stage-1) loss goes down
    first = dict(zip(hist[0]['names'], hist[0]['values'][0]))
    assert s1['train_loss'] < first['train_loss'] or s1['valid_loss'] < first['valid_loss'], (name, first, s1)
    active = [t for t in ('ce', 'supcon', 'sil', 'pml') if m.weights(0)[t] > 0]
    assert [n for n in hist[0]['names'] if n.startswith('train_') and n != 'train_loss'] == [f'train_{t}' for t in active]
    for t in active: assert math.isfinite(s1[f'train_{t}']) and math.isfinite(s1[f'valid_{t}'])
    pred, targ = labels_and_preds(learn, dls)
    acc = (pred == targ).float().mean().item()
    assert acc >= 0.2, (name, acc)                                                        # at least twice chance (10 classes)
    last = dict(zip(hist[-1]['names'], hist[-1]['values'][-1]))
    assert abs(last['accuracy'] - acc) < 1e-6                                            # the metric agrees with a direct count

def test_weighted_sum_and_term_columns_exact(dls):
    "valid_loss = sum of weight x term, and each valid term column is the size-weighted mean of the per-batch values."
    torch.manual_seed(0)
    learn = method_learner(dls, 'ce+supcon+sil', sil=0.5, supcon=2., **SMALL)
    quiet_fit(learn, learn.fit, 1, 1e-2)
    rec = dict(zip(learn.recorder.metric_names[1:], learn.recorder.values[-1]))
    assert abs(rec['valid_loss'] - (rec['valid_ce'] + 2 * rec['valid_supcon'] + 0.5 * rec['valid_sil'])) < 1e-4
    lf = CombinedLoss(ce=1, supcon=2, sil=0.5)
    sums, n = dict(ce=0., supcon=0., sil=0.), 0
    learn.model.eval()
    with torch.no_grad():
        for x, y in dls.valid:
            out = learn.model(x)
            sums['ce'] += F.cross_entropy(out[0], y).item() * len(y)
            lf(out, y)
            for k in ('supcon', 'sil'): sums[k] += lf.last[k].item() * len(y)
            n += len(y)
    for k in sums: assert abs(rec[f'valid_{k}'] - sums[k] / n) < 1e-4, k

def test_recorder_train_metrics_names(dls):
    learn = method_learner(dls, 'ce+sil', **SMALL)
    learn.recorder.train_metrics = True
    quiet_fit(learn, learn.fit, 1, 1e-2)
    names = list(learn.recorder.metric_names)
    assert names[:5] == ['epoch', 'train_loss', 'train_ce', 'train_sil', 'train_accuracy']
    assert 'valid_ce' in names and 'valid_sil' in names and 'train_train_ce' not in names
    rec = dict(zip(names[1:], learn.recorder.values[-1]))
    assert abs(rec['valid_loss'] - rec['valid_ce'] - 3.0 * rec['valid_sil']) < 1e-4      # the default silhouette weight is 3.0

def test_validate_reports_every_column(dls):
    learn = method_learner(dls, 'ce+sil', **SMALL)
    quiet_fit(learn, learn.fit, 1, 1e-2)
    with learn.no_bar(): res = learn.validate()
    names = [n for n in learn.recorder.metric_names[2:-1]]
    rec = dict(zip(names, res))
    assert all(math.isfinite(v) for v in res)                  # validate() has no training phase: the train columns give its terms too
    assert rec['train_ce'] == pytest.approx(rec['valid_ce'], rel=1e-6) and rec['train_sil'] == pytest.approx(rec['valid_sil'], rel=1e-6)
    assert rec['valid_loss'] == pytest.approx(rec['valid_ce'] + 3.0 * rec['valid_sil'], rel=1e-4)

def test_loss_term_metric():
    m = LossTermMetric('sil', 'train')
    m.add(torch.tensor(1.), 10); m.add(torch.tensor(4.), 30)
    m.reset()                                  # the Recorder's reset before validation must not clear the train column
    assert m.name == 'train_sil' and abs(float(m.value) - 3.25) < 1e-7
    assert LossTermMetric('ce').name == 'ce' and math.isnan(LossTermMetric('ce', 'valid').value)
    with pytest.raises(ValueError, match='term'): LossTermMetric('xent')
    with pytest.raises(ValueError, match='phase'): LossTermMetric('ce', 'test')

# ---------------------------------------------------------------- reduction, pickling, export
def test_none_reduction_shapes_and_means(dls):
    learn = method_learner(dls, 'ce+supcon+sil', **SMALL)
    quiet_fit(learn, learn.fit, 1, 1e-2)
    with learn.no_bar():
        probs, targs, losses = learn.get_preds(with_loss=True)                          # activation: softmax of the logits
        (logits, feats, proj), _ = learn.get_preds(act=lambda p: p)                      # the raw tuple
        valid_loss = learn.validate()[0]
    assert losses.shape == (360,) and probs.shape == (360, 10) and feats.shape == (360, 32) and proj.shape == (360, 32)
    assert torch.allclose(probs, F.softmax(logits, 1))
    assert abs(losses.mean().item() - valid_loss) < 1e-4                                 # 'none': the mean is the reduced loss
    lf = learn.loss_func
    x, y = dls.one_batch()
    out = learn.model(torch.cat([x, x.flip(-1)]))                                        # two views
    total = lf(out, y)
    lf.reduction = 'none'
    try: per = lf(out, y)
    finally: lf.reduction = 'mean'
    assert per.shape == (len(y),) and abs(per.mean().item() - total.item()) < 1e-5

def test_pickling(dls):
    learn = method_learner(dls, 'ce+proxyanchor', aug=RandomShiftNoise(), **SMALL)
    for obj in (learn.loss_func, learn.splitter, learn.method, *learn.cbs, *learn.metrics, RandomShiftNoise(0.2, 0.1)):
        back = pickle.loads(pickle.dumps(obj))
        assert type(back) is type(obj)
    lf = pickle.loads(pickle.dumps(learn.loss_func))
    x, y = dls.one_batch()
    out = learn.model(x)
    assert torch.allclose(lf(out, y), learn.loss_func(out, y))

@pytest.mark.parametrize('name', ['ce+sil', 'supcon+sil', 'ce+proxyanchor', 'arcface'])
def test_export_round_trip(dls, name, tmp_path):
    torch.manual_seed(0)
    learn = method_learner(dls, name, path=tmp_path, **SMALL)
    quiet_fit(learn, fit_method, learn, 1, 1e-2)
    with learn.no_bar(): p1 = learn.get_preds()[0].argmax(1)
    learn.export('export.pkl')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn2 = load_learner(tmp_path / 'export.pkl')
    assert learn2.method == METHODS[name] and learn2.weights == learn.weights
    with learn2.no_bar(): p2 = learn2.get_preds(dl=dls.valid.new(shuffle=False))[0].argmax(1)
    assert torch.equal(p1, p2)

# ---------------------------------------------------------------- the loss's parameters
@pytest.mark.parametrize('name, attr', [('ce+proxyanchor', 'proxies'), ('arcface', 'W'), ('ce+proxynca', 'proxies'), ('ce+center', 'centers')])
def test_loss_parameters_train(dls, name, attr):
    torch.manual_seed(0)
    learn = method_learner(dls, name, **SMALL)
    p = getattr(learn.pml.pml_loss.loss, attr)
    before = p.detach().clone()
    quiet_fit(learn, learn.fit, 1, 1e-2)
    assert any(q is p for q in learn.opt.param_lists[0])                                 # in the loss's own (first) parameter group
    assert (p.detach() - before).abs().max() > 1e-3

def test_with_loss_params_splitter():
    model = create_model('small_cnn', 10, 1, 16, 8, widths=(8,))
    lf = CombinedLoss(ce=1, pml=1, pml_loss=__import__('softsil_nb.learner', fromlist=['pml_term']).pml_term('proxyanchor', 10, 16))
    from softsil_nb.models import embedding_splitter
    groups = WithLossParams(lf, embedding_splitter)(model)
    assert len(groups) == 3 and groups[0] == [lf.pml_loss.loss.proxies]
    assert sum(len(g) for g in groups) == len(list(model.parameters())) + 1
    flat = WithLossParams(lf)(model)
    assert len(flat) == 2 and flat[0] == [lf.pml_loss.loss.proxies] and flat[1] == list(model.parameters())
    assert WithLossParams(CombinedLoss())(model)[0] == list(model.parameters())

def test_arcface_predicts_by_cosine_to_class_weights(dls):
    torch.manual_seed(0)
    learn = method_learner(dls, 'arcface', **SMALL)
    quiet_fit(learn, fit_method, learn, 2, 1e-2)
    W = learn.pml.pml_loss.loss.W.detach()
    learn.model.eval()
    x, _ = dls.valid.one_batch()
    with torch.no_grad(): logits, feats, _ = learn.model(x)
    assert torch.equal(logits.argmax(1), (F.normalize(feats, dim=1) @ F.normalize(W, dim=0)).argmax(1))
    assert learn.weights['ce'] == 0

# ---------------------------------------------------------------- two stages
def test_two_stage_protocol(dls):
    torch.manual_seed(0)
    learn = method_learner(dls, 'supcon2', **SMALL)
    snap = {}
    class Snap(Callback):
        "Snapshot the model when stage 2 starts (the LinearProbeCallback is there)."
        order = 100
        def before_fit(self):
            if any(isinstance(c, LinearProbeCallback) for c in self.learn.cbs):
                snap.update({k: v.clone() for k, v in self.learn.model.state_dict().items()})
    hist = quiet_fit(learn, fit_two_stage, learn, 2, 1e-2, 2, 1e-2, cbs=Snap())
    after = learn.model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], snap[k])}
    assert changed == {'classifier.weight', 'classifier.bias'}, changed                # encoder (BN stats too) and projector frozen
    assert learn.weights == dict(ce=1., supcon=0., sil=0., pml=0.)
    assert all(p.requires_grad for p in learn.model.parameters()) and not learn.model.encoder_frozen
    assert hist[0]['names'][2:4] == ['train_supcon', 'valid_supcon'] and hist[1]['names'][2:4] == ['train_ce', 'valid_ce']
    assert [cb.n_views for cb in learn.cbs if isinstance(cb, MultiViewCallback)] == [2]   # views restored
    with pytest.raises(ValueError, match='one stage'): fit_two_stage(method_learner(dls, 'ce', **SMALL), 1, 1e-3, 1, 1e-3)

def test_set_stage(dls):
    learn = method_learner(dls, 'supcon+sil', **SMALL)
    set_stage(learn, 1); assert learn.weights['ce'] == 1 and learn.weights['sil'] == 0 and learn.loss_func.weight == 1 and learn.sil.weight == 0
    set_stage(learn, 0); assert learn.weights == dict(ce=0., supcon=1., sil=3., pml=0.) and learn.supcon.weight == 1
    with pytest.raises(ValueError, match='has 2 stage'): set_stage(learn, 2)
    del learn.method
    with pytest.raises(ValueError, match='no method'): fit_method(learn, 1)

def test_overrides(dls):
    learn = method_learner(dls, 'ce+sil', sil=0.25, supcon_temperature=0.2, sil_loss=dict(temperature=0.05, metric='sqeuclidean'),
                           label_smoothing=0.1, **SMALL)
    assert learn.weights == dict(ce=1., supcon=0., sil=0.25, pml=0.) and learn.method.sil == 0.25
    sl = learn.sil.sil_loss
    assert sl.temperature == 0.05 and sl.metric == 'sqeuclidean' and sl.num_classes == 10 and learn.loss_func.label_smoothing == 0.1
    assert method_learner(dls, 'ce+supcon', supcon_temperature=0.2, **SMALL).supcon.supcon_loss.temperature == 0.2
    learn = method_learner(dls, 'ce+triplet', pml_loss=dict(margin=0.5), **SMALL)
    assert learn.pml.pml_loss.loss.margin == 0.5
    learn = method_learner(dls, 'ce', views=2, **SMALL)
    assert [cb.n_views for cb in learn.cbs if isinstance(cb, MultiViewCallback)] == [2]
    assert not any(isinstance(cb, MultiViewCallback) for cb in method_learner(dls, 'ce', **SMALL).cbs)

# ---------------------------------------------------------------- errors
class TupleOf2(nn.Module):
    def __init__(self): super().__init__(); self.m = create_model('small_cnn', 10, 1, 16, 8, widths=(8,))
    def forward(self, x): return self.m(x)[:2]

class DictOut(nn.Module):
    def __init__(self): super().__init__(); self.lin = nn.Linear(64, 10)
    def forward(self, x): return {'logits': self.lin(x.flatten(1))}

class PlainItems(torch.utils.data.Dataset):
    "A dataset that exposes no label tensor."
    def __init__(self, x, y): self.x, self.yy = x, y
    def __len__(self): return len(self.x)
    def __getitem__(self, i): return self.x[i], self.yy[i]

def test_errors(dls):
    with pytest.raises(ValueError, match=r"unknown method 'ce\+silhouette'"): method_learner(dls, 'ce+silhouette')
    with pytest.raises(TypeError, match=r'must return a tuple \(logits'): method_learner(dls, 'ce', arch=TupleOf2())
    with pytest.raises(TypeError, match='returned dict'): method_learner(dls, 'ce', arch=DictOut())
    with pytest.raises(ValueError, match=r'labels must lie in 0\.\.6'): method_learner(dls, 'ce', n_classes=7, **SMALL)
    with pytest.raises(ValueError, match='classifier has 10 outputs'):
        method_learner(dls, 'ce', arch=create_model('small_cnn', 10, 1, 16, 8, widths=(8,)), n_classes=12)
    with pytest.raises(ValueError, match='n_classes must be an int >= 2'): method_learner(dls, 'ce', n_classes=1)
    with pytest.raises(ValueError, match='unknown arch'): method_learner(dls, 'ce', arch='resnet1800')
    d = load_digits()
    x, y = torch.tensor(d.images[:200], dtype=torch.float32)[:, None], torch.tensor(d.target[:200])
    neg = DataLoaders.from_dsets(TensorItems(x, y - 1), TensorItems(x, y - 1), bs=64, num_workers=0)
    with pytest.raises(ValueError, match=r'labels must lie in 0\.\.'): method_learner(neg, 'supcon2', n_classes=10, **SMALL)
    flt = DataLoaders.from_dsets(TensorItems(x, y.float()), TensorItems(x, y.float()), bs=64, num_workers=0)
    with pytest.raises(TypeError, match='labels must be integer'): method_learner(flt, 'ce', n_classes=10, **SMALL)
    plain = DataLoaders.from_dsets(PlainItems(x, y), PlainItems(x, y), bs=64, num_workers=0)
    with pytest.raises(ValueError, match='pass n_classes'): method_learner(plain, 'ce', **SMALL)
    assert method_learner(plain, 'ce', n_classes=10, **SMALL).weights['ce'] == 1

# ---------------------------------------------------------------- views and augmentation
class TwoViewDL:
    "Batches that already hold two views: x [2B, ...] view-major, y [B]."
    def __init__(self, dl, v=2): self.dl, self.v = dl, v
    def __iter__(self):
        for x, y in self.dl: yield torch.cat([x] + [x.flip(-1)] * (self.v - 1)), y
    def __len__(self): return len(self.dl)
    def __getattr__(self, k): return getattr(self.dl, k)

class Seen(Callback):
    order = 100
    def after_loss(self):
        if self.training: self.learn.seen, self.learn.seen_x = (self.xb[0].shape, self.y.shape, self.pred[0].shape), self.xb[0]

def test_multi_view_shapes(dls):
    two = DataLoaders(TwoViewDL(dls.train), TwoViewDL(dls.valid))
    learn = method_learner(two, 'ce+supcon+sil', n_classes=10, cbs=Seen(), **SMALL)
    quiet_fit(learn, learn.fit, 1, 1e-2)
    xs, ys, ps = learn.seen
    assert xs[0] == 2 * ys[0] and ps == (xs[0], 10)                                      # passed through, not doubled again
    single = method_learner(dls, 'ce+supcon', cbs=Seen(), **SMALL)
    quiet_fit(single, single.fit, 1, 1e-2)
    xs, ys, _ = single.seen
    assert xs[0] == 2 * ys[0]                                                            # made by MultiViewCallback
    rec = dict(zip(learn.recorder.metric_names[1:], learn.recorder.values[-1]))
    assert 0 <= rec['accuracy'] <= 1 and math.isfinite(rec['silhouette_cosine'])         # metrics read the first view
    three = DataLoaders(TwoViewDL(dls.train, 3), dls.valid)
    keep = method_learner(three, 'ce+supcon', n_classes=10, cbs=Seen(), **SMALL)
    quiet_fit(keep, keep.fit, 1, 1e-2)
    xs, ys, _ = keep.seen
    assert xs[0] == 2 * ys[0]                                                            # more views than needed: the first two
    b = ys[0]
    assert torch.equal(keep.seen_x[b:], keep.seen_x[:b].flip(-1))                       # views 1 and 2 (x, flipped x), view-major
    bad = method_learner(two, 'ce+supcon', views=3, n_classes=10, **SMALL)
    with pytest.raises(ValueError, match='holds 2 views per label'): quiet_fit(bad, bad.fit, 1, 1e-2)

def test_two_stage_with_dataloader_views(dls):
    "Stage 1 sees the DataLoaders' two views; stage 2 (linear probe) keeps the first view only."
    two = DataLoaders(TwoViewDL(dls.train), dls.valid)
    shapes = []
    class Rows(Callback):
        order = 100
        def after_pred(self):
            if self.training: shapes.append((len(self.xb[0]), len(self.y), self.learn.loss_func.weight))
    learn = method_learner(two, 'supcon+sil', n_classes=10, **SMALL)
    quiet_fit(learn, fit_method, learn, 1, 1e-2, epochs2=1, cbs=Rows())
    s1, s2 = [s for s in shapes if s[2] == 0], [s for s in shapes if s[2] == 1]
    assert s1 and s2 and all(x == 2 * y for x, y, _ in s1) and all(x == y for x, y, _ in s2)

def test_accuracy_first_view():
    logits = torch.tensor([[1., 0], [0, 1], [1, 0], [1, 0]])
    assert accuracy((logits, None, None), torch.tensor([0, 1])).item() == 1.
    assert accuracy(logits[:2], torch.tensor([0, 0])).item() == 0.5

def shifted(img, dy, dx):
    out = torch.roll(img, (dy, dx), (1, 2))
    if dy > 0: out[:, :dy] = 0
    if dy < 0: out[:, dy:] = 0
    if dx > 0: out[:, :, :dx] = 0
    if dx < 0: out[:, :, dx:] = 0
    return out

@settings(max_examples=20, deadline=None)
@given(st.integers(4, 20), st.integers(4, 20), st.integers(1, 3), st.floats(0.1, 0.45), st.integers(0, 2**16))
def test_random_shift_is_a_shift(h, w, c, frac, seed):
    torch.manual_seed(seed)
    x = torch.rand(5, c, h, w)
    out = RandomShiftNoise(frac, noise=0.)(x)
    ph, pw = round(frac * h), round(frac * w)
    for i in range(5):
        assert any(torch.equal(out[i], shifted(x[i], dy, dx)) for dy in range(-ph, ph + 1) for dx in range(-pw, pw + 1))

def test_random_shift_noise_options():
    x = torch.rand(2000, 3)
    assert torch.equal(RandomShiftNoise(0.3, 0.)(x), x)                                   # 2-D input: noise only
    assert abs((RandomShiftNoise(0.3, 0.2)(x) - x).std().item() - 0.2) < 0.01
    with pytest.raises(ValueError, match='max_shift'): RandomShiftNoise(2)
    with pytest.raises(ValueError, match='noise'): RandomShiftNoise(0.1, -1)
    with pytest.raises(ValueError, match='n_views'): MultiViewCallback(0)

# ---------------------------------------------------------------- MixUp / CutMix
@pytest.mark.parametrize('mix', [MixUp, CutMix])
@pytest.mark.parametrize('name', ['ce+sil', 'ce+supcon+sil'])
def test_mixup_cutmix(dls, mix, name):
    torch.manual_seed(0)
    learn = method_learner(dls, name, cbs=mix(), **SMALL)
    quiet_fit(learn, learn.fit_one_cycle, 2, 1e-2)
    rec = dict(zip(learn.recorder.metric_names[1:], learn.recorder.values[-1]))
    assert all(math.isfinite(v) for v in rec.values()), rec
    assert rec['accuracy'] > 0.2 and isinstance(learn.loss_func, LogitsCrossEntropy)

def test_mixup_refuses_dataloader_views(dls):
    two = DataLoaders(TwoViewDL(dls.train), dls.valid)
    learn = method_learner(two, 'ce+supcon', n_classes=10, cbs=MixUp(), **SMALL)
    with pytest.raises(ValueError, match='MixUp/CutMix mix the rows of x'): quiet_fit(learn, learn.fit, 1, 1e-2)
    assert isinstance(learn.loss_func, LogitsCrossEntropy)                               # restored after the failed fit

# ---------------------------------------------------------------- metrics against oracles
def feats_labels(seed, n=60, d=4, c=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, c, (n,), generator=g)

class FakeLearn:
    def __init__(self, pred, y): self.pred, self.yb = pred, (y,)
    @property
    def y(self): return self.yb[0]

def accumulate(m, feats, labels, bs=16):
    m.reset()
    for i in range(0, len(feats), bs): m.accumulate(FakeLearn((None, feats[i:i + bs], None), labels[i:i + bs]))
    return m.value

@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10**6), st.integers(5, 80), st.integers(2, 6), st.sampled_from(['cosine', 'euclidean']))
def test_silhouette_metric_equals_sklearn(seed, n, c, metric):
    x, y = feats_labels(seed, n, 5, c)
    assume(2 <= len(torch.unique(y)) <= n - 1)
    v = accumulate(SilhouetteMetric(metric), x, y, bs=7)
    assert abs(v - skm.silhouette_score(x.numpy().astype(np.float64), y.numpy(), metric=metric)) < 1e-6

@pytest.mark.parametrize('k', [1, 3, 5])
@pytest.mark.parametrize('metric', ['cosine', 'euclidean'])
def test_knn_accuracy_equals_sklearn_leave_one_out(k, metric):
    x, y = feats_labels(k, 50, 3, 4)
    knn = KNeighborsClassifier(n_neighbors=k, metric=metric, algorithm='brute')
    ref = (cross_val_predict(knn, x.numpy().astype(np.float64), y.numpy(), cv=LeaveOneOut()) == y.numpy()).mean()
    assert abs(accumulate(KNNAccuracy(k, metric, block_size=7), x, y) - ref) < 1e-12

def map_at_r_oracle(x, y, metric):
    "MAP@R (Musgrave et al. 2020) by loops: each query retrieves its R nearest others, R = its class size - 1."
    x = x.double()
    d = 1 - F.normalize(x, dim=1) @ F.normalize(x, dim=1).T if metric == 'cosine' else torch.cdist(x, x)
    aps, r1 = [], []
    for i in range(len(x)):
        R = int((y == y[i]).sum()) - 1
        if R == 0: continue
        order = [j for j in torch.argsort(d[i]).tolist() if j != i][:R]
        rel = [int(y[j] == y[i]) for j in order]
        aps.append(sum(rel[k] * sum(rel[:k + 1]) / (k + 1) for k in range(R)) / R)
        r1.append(rel[0])
    return np.mean(aps), np.mean(r1)

@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize('metric', ['cosine', 'euclidean'])
def test_retrieval_metrics_equal_oracle(seed, metric):
    x, y = feats_labels(seed, 45, 3, 4)
    y[0] = 9                                                                             # a singleton class: left out as a query
    ref_map, ref_r1 = map_at_r_oracle(x, y, metric)
    assert abs(accumulate(RetrievalMetric('map_at_r', metric), x, y) - ref_map) < 1e-6
    assert abs(accumulate(RetrievalMetric('recall_at_1', metric), x, y) - ref_r1) < 1e-6

@pytest.mark.parametrize('m', [SilhouetteMetric(), KNNAccuracy(), RetrievalMetric('map_at_r'), RetrievalMetric('recall_at_1')])
def test_metrics_one_class_warn_nan(m):
    x, _ = feats_labels(0)
    with pytest.warns(UserWarning, match='1 class'): v = accumulate(m, x, torch.zeros(60, dtype=torch.long))
    assert math.isnan(v)

def test_silhouette_metric_all_singletons_warns():
    x, _ = feats_labels(0, 10)
    with pytest.warns(UserWarning, match='needs 2 to n - 1'): assert math.isnan(accumulate(SilhouetteMetric(), x, torch.arange(10)))

def test_metric_on_single_class_validation_set_does_not_crash_fit():
    d = load_digits()
    x, y = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16, torch.tensor(d.target)
    one = y == 3
    dls1 = DataLoaders.from_dsets(TensorItems(x[~one][:400], y[~one][:400]), TensorItems(x[one][:50], y[one][:50]), bs=64, num_workers=0)
    learn = method_learner(dls1, 'ce+sil', n_classes=10, metrics=[accuracy, SilhouetteMetric(), KNNAccuracy()], **SMALL)
    with pytest.warns(UserWarning, match='1 class'), learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    rec = dict(zip(learn.recorder.metric_names[1:], learn.recorder.values[-1]))
    assert math.isnan(rec['silhouette_cosine']) and math.isnan(rec['knn5_accuracy']) and 0 <= rec['accuracy'] <= 1

def test_metric_needs_tuple():
    m = SilhouetteMetric()
    with pytest.raises(TypeError, match='EmbeddingClassifier'): m.accumulate(FakeLearn(torch.randn(4, 3), torch.arange(4)))

# ---------------------------------------------------------------- mixed precision (hardware)
@pytest.mark.cuda   # fastai's to_fp16 autocasts on CUDA only: `pytest --cuda` on a machine with a GPU
def test_to_fp16_trains_on_cuda():
    dls = make_dls()
    dls.to(torch.device('cuda'))
    torch.manual_seed(0)
    for name in ('ce+supcon+sil', 'ce+proxyanchor', 'arcface'):
        learn = method_learner(dls, name, **SMALL).to_fp16()
        quiet_fit(learn, fit_method, learn, 2, 1e-2)
        rec = dict(zip(learn.recorder.metric_names[1:], learn.recorder.values[-1]))
        assert math.isfinite(rec['valid_loss']) and rec['accuracy'] > 0.5, (name, rec)
        with learn.no_bar(): (logits, feats, _), _ = learn.get_preds(act=lambda p: p)
        assert logits.dtype == torch.float32 and torch.isfinite(feats).all()

# ---------------------------------------------------------------- one mechanism: cross-entropy as the loss, a callback per term
def combined_formula(model, pml, x, y, w):
    "The objective `CombinedLoss` computed, written out: weighted CE on every view's logits + SupCon(projections) + Sil(features) + PML(features)."
    logits, feats, proj = model(x)
    yy = y.repeat(len(x) // len(y))
    loss = w['ce'] * F.cross_entropy(logits, yy) if w['ce'] else 0.
    if w['supcon']: loss = loss + w['supcon'] * SupConLoss(0.1)(proj, yy)
    if w['sil']: loss = loss + w['sil'] * SoftSilhouetteLoss()(feats, yy)
    if w['pml']: loss = loss + w['pml'] * pml(feats, yy)
    return loss

@pytest.mark.parametrize('name', ['ce+sil', 'ce+supcon+sil', 'ce+proxyanchor', 'arcface', 'supcon+sil'])
def test_step_is_the_combined_objective(dls, name):
    "A training step of method_learner (LogitsCrossEntropy + term callbacks) has the loss and every gradient (model, proxies) of the combined objective, float64."
    import copy
    from fastai.callback.core import CancelFitException
    torch.manual_seed(0)
    learn = method_learner(dls, name, **SMALL)
    learn.model.double()
    if learn.weights['pml']: learn.pml.pml_loss.double()
    got = {}
    class Grab(Callback):
        order = 100
        def before_fit(self):                          # after ProxyClassifierCallback's sync: the model the step starts from
            got['model'] = copy.deepcopy(self.learn.model)
            got['pml'] = copy.deepcopy(self.learn.pml.pml_loss.loss) if learn.weights['pml'] else None
        def before_batch(self): self.learn.xb = (self.xb[0].double(),)
        def after_loss(self): got['x'], got['y'], got['loss'] = self.xb[0], self.yb[0], self.loss_grad.detach()
        def after_backward(self):
            ps = list(self.learn.model.parameters()) + (list(self.learn.pml.pml_loss.parameters()) if got['pml'] is not None else [])
            got['grads'] = [None if p.grad is None else p.grad.clone() for p in ps]
            raise CancelFitException()
    class Dbl(Callback):
        order = -50
        def before_batch(self): self.learn.xb = (self.xb[0].double(),)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 0., cbs=[Dbl(), Grab()])
    model, pml, x, y = got['model'], got['pml'], got['x'], got['y']
    assert x.dtype == torch.float64 and len(x) == METHODS[name].views * len(y)
    ref = combined_formula(model, pml, x, y, METHODS[name].weights(0))
    ref.backward()
    torch.testing.assert_close(got['loss'], ref.detach(), rtol=1e-12, atol=1e-12)
    ps = list(model.parameters()) + (list(pml.parameters()) if pml is not None else [])
    assert len(ps) == len(got['grads']) and sum(g is not None for g in got['grads']) > 4
    for g, p in zip(got['grads'], ps):
        assert (g is None) == (p.grad is None)                 # ce=0: no gradient reaches the classifier, as before
        if g is not None: torch.testing.assert_close(g, p.grad, rtol=1e-10, atol=1e-12)

def test_method_learner_terms_are_callbacks(dls):
    "The loss is cross-entropy alone; each other term is a callback that reads the model's own outputs, with static shapes and no per-step checks."
    learn = method_learner(dls, 'ce+supcon+sil', **SMALL)
    assert type(learn.loss_func) is LogitsCrossEntropy and learn.loss_func.weight == 1
    assert learn.sil.layer == 'features' and learn.sil.sil_loss.num_classes == 10 and learn.sil.sil_loss.check_inputs is False
    assert learn.supcon.layer == 'projections' and isinstance(learn.supcon.head, nn.Identity) and learn.supcon.supcon_loss.check_inputs is False
    assert not learn.sil.column and not learn.supcon.column and learn.weights == dict(ce=1., supcon=1., sil=3., pml=0.)
    center = method_learner(dls, 'ce+center', **SMALL)
    assert isinstance(center.pml, PMLTermCallback) and center.pml.pml_loss.loss.check_inputs is False
    assert center.splitter.loss_params() == [center.pml.pml_loss.loss.centers]
    from softsil_nb.losses import SoftSilhouetteLoss as SSL
    given = method_learner(dls, 'ce+sil', sil_loss=SSL(temperature=0.3), **SMALL)         # a loss object (the runner's): its options, cheap path
    assert given.sil.sil_loss.temperature == 0.3 and given.sil.sil_loss.num_classes == 10 and not given.sil.sil_loss.check_inputs

@pytest.mark.parametrize('name', ['ce+sil', 'ce+supcon+sil', 'supcon2', 'ce+center'])
def test_training_steps_make_no_host_sync(dls, name, monkeypatch):
    "No training step reads a tensor back to the host (item, tolist, bool, float, int, cpu, numpy, unique) in method_learner's Learner."
    import os, traceback
    learn = method_learner(dls, name, **SMALL)
    inside, calls = [False], []
    fastai_smooth = os.path.join('fastai', 'learner.py')
    def counting(orig, what):
        def f(*a, **k):
            if inside[0]:
                where = traceback.extract_stack(limit=6)[:-1]
                # fastai's own Recorder: AvgSmoothLoss copies the loss with to_detach(cpu=True) every step; not ours to change
                if not any(fr.name == 'accumulate' and fr.filename.endswith(fastai_smooth) for fr in where):
                    calls.append(f'{what} from {where[-1].name} ({os.path.basename(where[-1].filename)})')
            return orig(*a, **k)
        return f
    class Start(Callback):
        order = -100
        def before_batch(self): inside[0] = self.training
    class End(Callback):
        order = 1000
        def after_batch(self): inside[0] = False
    with learn.no_logging(), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn.fit(1, 1e-3)                                     # warm up outside the count (lazy initialisation)
        for attr in ('item', 'tolist', '__bool__', '__float__', '__int__', '__index__', 'cpu', 'numpy', 'unique'):
            monkeypatch.setattr(torch.Tensor, attr, counting(getattr(torch.Tensor, attr), attr))
        monkeypatch.setattr(torch, 'unique', counting(torch.unique, 'torch.unique'))
        learn.fit(1, 1e-3, cbs=[Start(), End()])
        ok = list(calls)
        if name == 'ce+sil':                                    # the count sees the checks the cheap path leaves out
            learn.sil.sil_loss.check_inputs = True
            learn.fit(1, 1e-3, cbs=[Start(), End()])
            assert len(calls) >= len(learn.dls.train)
    monkeypatch.undo()
    assert ok == [], sorted(set(ok))
    assert learn.recorder.values and all(math.isfinite(v) for v in learn.recorder.values[-1][:2])
