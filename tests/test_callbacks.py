"""The term callbacks on real fastai Learners: vision_learner(resnet18) and a timm model on an image folder built from
scikit-learn's digits, a plain Learner, method_learner's models. Every term is checked against SoftSilhouetteLoss / SupConLoss
of the features captured separately with fastai's `hook_output`."""
import math
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import TensorDataset
from fastai.callback.core import Callback
from fastai.callback.hook import Hook, hook_output
from fastai.callback.mixup import MixUp, CutMix
from fastai.callback.training import GradientAccumulation
from fastai.data.core import DataLoaders
from fastai.learner import Learner, load_learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy
from fastai.torch_core import set_seed
from fastai.vision.data import ImageDataLoaders
from fastai.vision.learner import vision_learner
from torchvision.models import resnet18
from softsil_nb.losses import SoftSilhouetteLoss, SupConLoss
from softsil_nb.models import create_model
from softsil_nb.learner import MultiViewCallback, RandomShiftNoise, method_learner
from softsil_nb.callbacks import SIL_WEIGHT, SoftSilhouetteCallback, SupConCallback, classifier_features

@pytest.fixture(autouse=True, scope='module')
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

@pytest.fixture(scope='module')
def folder(tmp_path_factory):
    "An image folder (train/valid, one folder per class) of 32x32 PNGs from scikit-learn's digits: 8 + 4 images of each of 10 classes."
    root = tmp_path_factory.mktemp('digits')
    X, y = load_digits(return_X_y=True)
    counts = {}
    for img, lab in zip(X, y):
        k = counts.get(lab, 0)
        if k >= 12: continue
        counts[lab] = k + 1
        d = root / ('train' if k < 8 else 'valid') / str(lab); d.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img.reshape(8, 8) * 255 / 16).astype(np.uint8)).resize((32, 32), Image.NEAREST).save(d / f'{k}.png')
    return root

def folder_dls(root, bs=16):
    set_seed(0, reproducible=True)
    return ImageDataLoaders.from_folder(root, train='train', valid='valid', bs=bs, num_workers=0, seed=0)

def features_module(model):
    "fastai's head: [..., BatchNorm1d, Dropout(0.5), Linear]: the BatchNorm's output is what the classifier reads (before dropout)."
    return model[1][-3]

class Record(Callback):
    "Keep each training batch's pred, labels and loss after the term callbacks ran (and before fastai scales for accumulation)."
    order = 5.5
    def before_fit(self): self.rows = []
    def after_loss(self):
        if self.training: self.rows.append((self.pred.detach(), self.yb[0], self.loss.detach()))

def fit_recording(learn, hook):
    "Fit `learn` one epoch (no bar, no logging) with `hook` on a layer: the `Record` rows and the hooked output of each training batch."
    rec, stored = Record(), []
    class Keep(Callback):
        order = 5.4
        def after_loss(self):
            if self.training: stored.append(hook.stored)
    with learn.no_bar(), learn.no_logging(), hook: learn.fit(1, 1e-3, cbs=[rec, Keep()])
    return rec, stored

def P(t): return t.as_subclass(torch.Tensor)

def sil_of(feats, y, c=10, **kw): return SoftSilhouetteLoss(num_classes=c, **kw)(feats.float().as_subclass(torch.Tensor), y.as_subclass(torch.Tensor))

def test_classifier_features():
    "The features the classifier reads: the Dropout before fastai's last Linear, an EmbeddingClassifier's encoder, a plain last Linear."
    head = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3))
    assert classifier_features(head) == (head[3], 'input')
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))
    assert classifier_features(plain) == (plain[3], 'input')
    m = create_model(n_classes=3, widths=(8,), feat_dim=16, proj_dim=8)
    assert classifier_features(m) == (m.encoder, 'output')           # not the projector's last Linear
    with pytest.raises(TypeError, match='no nn.Linear'): classifier_features(nn.Sequential(nn.Conv2d(1, 2, 3)))
    with pytest.raises(ValueError, match='weight must be'): SoftSilhouetteCallback(-1.)
    with pytest.raises(ValueError, match='temperature'): SoftSilhouetteCallback(1., temperature=-1)
    assert SoftSilhouetteCallback().weight == SIL_WEIGHT == 3.0

def test_vision_learner_term_equals_hooked_features(folder):
    "resnet18 through vision_learner: loss = CE + 3 * SoftSilhouetteLoss(features), valid_loss and the sil column too, get_preds(with_loss)."
    dls = folder_dls(folder)
    learn = vision_learner(dls, resnet18, pretrained=False, metrics=accuracy, cbs=SoftSilhouetteCallback())
    rec, hooked = fit_recording(learn, hook_output(features_module(learn.model), detach=False))
    assert learn.recorder.metric_names[1:-1] == ['train_loss', 'valid_loss', 'accuracy', 'sil']
    assert len(rec.rows) == 5
    for (pred, y, loss), feats in zip(rec.rows, hooked):
        expect = F.cross_entropy(P(pred).float(), P(y)) + 3.0 * sil_of(feats, y)
        torch.testing.assert_close(loss, expect.detach(), rtol=1e-5, atol=1e-6)
    # validation: valid_loss and sil are epoch means of (CE + 3 sil) and sil over the validation batches
    with learn.no_bar(), hook_output(features_module(learn.model), detach=False) as h:
        tot, sil, n = 0., 0., 0
        learn.model.eval()
        with torch.no_grad():
            for xb, yb in dls.valid:
                p = P(learn.model(xb)); yb = P(yb); s = sil_of(h.stored, yb)
                tot += (F.cross_entropy(p, yb) + 3 * s).item() * len(yb); sil += s.item() * len(yb); n += len(yb)
        vals = learn.validate()
    assert len(vals) == 3 and all(math.isfinite(v) for v in vals)
    assert vals[0] == pytest.approx(tot / n, rel=1e-5) and vals[2] == pytest.approx(sil / n, rel=1e-5)
    # per-sample losses: CE per sample + 3 * the silhouette's per-sample values (their mean is the batch term)
    with learn.no_bar(), hook_output(features_module(learn.model), detach=False) as h:
        per = []
        class KeepV(Callback):
            def after_pred(self): per.append(F.cross_entropy(P(self.pred), P(self.yb[0]), reduction='none')
                                                 + 3 * SoftSilhouetteLoss(num_classes=10, reduction='none')(P(h.stored).float(), P(self.yb[0])))
        _, _, losses = learn.get_preds(with_loss=True, cbs=KeepV())
    torch.testing.assert_close(losses, torch.cat(per), rtol=1e-5, atol=1e-6)
    assert learn.metrics.attrgot('name') == ['accuracy']                   # the column is added for each fit only

def test_plain_learner_and_gradient_accumulation():
    "A plain Learner(dls, any model); with GradientAccumulation the accumulated gradient is the sum of each micro-batch's scaled objective's."
    X, y = load_digits(return_X_y=True)
    X, y = torch.tensor(X[:96]).float() / 16, torch.tensor(y[:96])
    ds = TensorDataset(X, y)
    dls = DataLoaders.from_dsets(ds, TensorDataset(X[:32], y[:32]), bs=16, shuffle=False, device='cpu')
    def model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).double()
    m = model()
    got = {}
    class Grads(Callback):
        order = GradientAccumulation.order + 1                            # before_step after GradientAccumulation let the step happen
        def before_step(self):
            if 'g' not in got: got['g'] = [p.grad.clone() for p in self.model.parameters()]
            raise __import__('fastai').callback.core.CancelFitException()
    learn = Learner(dls, m, loss_func=CrossEntropyLossFlat(), cbs=[SoftSilhouetteCallback(2.0, num_classes=10), GradientAccumulation(32)])
    learn.dls.train.shuffle = False
    with learn.no_bar(), learn.no_logging():
        class Dbl(Callback):
            order = -1
            def before_batch(self): self.learn.xb = (self.xb[0].double(),)
        learn.fit(1, 0., cbs=[Grads(), Dbl()])
    ref = model()
    ref.zero_grad()
    with Hook(ref[2], lambda m, i, o: i[0], detach=False) as h:
        for k in range(2):                                                # two micro-batches of 16 make the 32 of n_acc
            xb, yb = X[16 * k:16 * (k + 1)].double(), y[16 * k:16 * (k + 1)]
            out = ref(xb)
            loss = (F.cross_entropy(out, yb) + 2.0 * SoftSilhouetteLoss(num_classes=10)(h.stored, yb)) * 16 / 32
            loss.backward()
    for g, p in zip(got['g'], ref.parameters()): torch.testing.assert_close(g, p.grad, rtol=1e-6, atol=1e-8)

def test_timm_model(folder):
    "A timm resnet18 (random weights) through vision_learner: the term reads fastai's head, training stays finite."
    pytest.importorskip('timm')
    dls = folder_dls(folder)
    learn = vision_learner(dls, 'resnet18', pretrained=False, cbs=SoftSilhouetteCallback())
    rec, feats = fit_recording(learn, hook_output(features_module(learn.model), detach=False))
    for (pred, y, loss), f in zip(rec.rows, feats):
        torch.testing.assert_close(loss, (F.cross_entropy(P(pred).float(), P(y)) + 3.0 * sil_of(f, y)).detach(), rtol=1e-5, atol=1e-6)
    assert all(math.isfinite(v) for v in learn.recorder.values[-1])

def small_dls(n=200, bs=50, views=1):
    X, y = load_digits(return_X_y=True)
    X, y = torch.tensor(X[:n]).float().view(-1, 1, 8, 8) / 16, torch.tensor(y[:n])
    return DataLoaders.from_dsets(TensorDataset(X, y), TensorDataset(X[:100], y[:100]), bs=bs, device='cpu')

def test_method_learner_model_same_as_method():
    "On method_learner's model the callback reads its features: 'ce' + the callback gives the loss and gradients of 'ce+sil' (float64)."
    dls = small_dls()
    xb, yb = dls.one_batch()
    out = {}
    for name, kw in (('method', dict(method='ce+sil', sil=3.0)), ('callback', dict(method='ce', cbs=SoftSilhouetteCallback(3.0)))):
        torch.manual_seed(0)
        learn = method_learner(dls, arch_kwargs=dict(widths=(8, 16)), feat_dim=16, proj_dim=8, metrics=[], **kw)
        learn.model.double()
        class Grab(Callback):
            order = 6
            def before_batch(self): self.learn.xb = (self.xb[0].double(),)
            def after_backward(self):
                out[name] = (self.loss.item(), [None if p.grad is None else p.grad.clone() for p in self.model.parameters()])
                raise __import__('fastai').callback.core.CancelFitException()
        learn.dls.train.shuffle = False
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 0., cbs=Grab())
    assert out['method'][0] == pytest.approx(out['callback'][0], rel=1e-6)    # CE is float32 in both; the loss keeps CE's dtype
    assert sum(a is not None for a in out['method'][1]) > 4
    for a, b in zip(out['method'][1], out['callback'][1]):
        assert (a is None) == (b is None)
        if a is not None: torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)

def test_bf16_autocast_cpu():
    "Under CPU bfloat16 autocast the term is computed in float32 from the bf16 features and equals the loss of those features."
    dls = small_dls()
    torch.manual_seed(0)
    m = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    learn = Learner(dls, m, loss_func=CrossEntropyLossFlat(), cbs=SoftSilhouetteCallback(num_classes=10))
    with torch.autocast('cpu', dtype=torch.bfloat16): rec, feats = fit_recording(learn, Hook(m[3], lambda mod, i, o: i[0], detach=False))
    assert feats[0].dtype == torch.bfloat16
    for (pred, y, loss), f in zip(rec.rows, feats):
        torch.testing.assert_close(loss.float(), (F.cross_entropy(P(pred).float(), P(y)) + 3 * sil_of(f, y)).float(), rtol=2e-2, atol=2e-2)
        assert math.isfinite(loss.item())

@pytest.mark.cuda
def test_to_fp16_cuda(folder):
    "fastai's to_fp16 (CUDA): the term is computed in float32 from the half features; it trains and stays finite."
    dls = folder_dls(folder).cuda()
    learn = vision_learner(dls, resnet18, pretrained=False, cbs=[SoftSilhouetteCallback(), MultiViewCallback(2), SupConCallback()]).to_fp16()
    rec, feats = fit_recording(learn, hook_output(features_module(learn.model), detach=False))
    assert feats[0].dtype == torch.float16
    assert all(math.isfinite(v) for v in learn.recorder.values[-1])
    pred, y, loss = rec.rows[0]
    sc = [cb for cb in learn.cbs if isinstance(cb, SupConCallback)][0]
    assert loss.item() > (F.cross_entropy(P(pred).float(), P(y)) + 3 * sil_of(feats[0], y)).item()   # the SupCon term on top

@pytest.mark.parametrize('mix', [MixUp(0.4), CutMix(1.)])
def test_mixup_cutmix(folder, mix):
    "On a mixed batch the term reads the mixed images' features with the un-shuffled labels (MixUp's majority label); it trains, finite."
    dls = folder_dls(folder)
    learn = vision_learner(dls, resnet18, pretrained=False, cbs=[SoftSilhouetteCallback(), mix])
    terms = []
    with learn.no_bar(), learn.no_logging(), hook_output(features_module(learn.model), detach=False) as h:
        class Keep(Callback):
            order = 5.5
            def after_loss(self):
                if self.training: terms.append((sil_of(h.stored, self.yb[0]).item(), learn.cbs.filter(lambda c: isinstance(c, SoftSilhouetteCallback))[0].last.item()))
        learn.fit(1, 1e-3, cbs=Keep())
    assert len(terms) == 5 and all(a == pytest.approx(b, rel=1e-5) for a, b in terms)
    assert all(math.isfinite(v) for v in learn.recorder.values[-1])

def test_fine_tune_lr_find_predict_export(folder, tmp_path):
    "fine_tune, lr_find, predict (no labels: no term) and export + load_learner + predict, on a from_folder Learner with both callbacks."
    dls = folder_dls(folder)
    learn = vision_learner(dls, resnet18, pretrained=False, path=tmp_path,
                           cbs=[SoftSilhouetteCallback(), MultiViewCallback(2, RandomShiftNoise(noise=0.)), SupConCallback(0.5, proj_dim=16)])
    with learn.no_bar(), learn.no_logging():
        learn.fine_tune(1, 1e-3, freeze_epochs=1)
        assert all(math.isfinite(v) for v in learn.recorder.values[-1])
        sug = learn.lr_find(num_it=6, show_plot=False)
        assert math.isfinite(sug.valley)
        img = folder / 'valid' / '3' / '8.png'
        p1 = learn.predict(img)
    assert not any(m.has_hooks() if hasattr(m, 'has_hooks') else m._forward_hooks or m._forward_pre_hooks for m in learn.model.modules())
    learn.export('e.pkl')
    learn2 = load_learner(tmp_path / 'e.pkl')
    with learn2.no_bar(): p2 = learn2.predict(img)
    assert p1[0] == p2[0] and torch.allclose(p1[2], p2[2], atol=1e-6)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)            # the Learner still trains after export

def test_supcon_on_vision_learner(folder, tmp_path):
    "CE + SupCon + Sil on vision_learner: SupCon reads head(features) of both views, labels repeated view-major; the head trains."
    dls = folder_dls(folder)
    sup = SupConCallback(1.0, temperature=0.1, proj_dim=16)
    learn = vision_learner(dls, resnet18, pretrained=False, path=tmp_path,
                           cbs=[MultiViewCallback(2, RandomShiftNoise(noise=0.)), sup, SoftSilhouetteCallback()])
    rec = Record()
    with learn.no_bar(), learn.no_logging(), hook_output(features_module(learn.model), detach=False) as h:
        feats, heads = [], []
        class Keep(Callback):
            order = 5.4
            def after_loss(self):
                if self.training: feats.append(h.stored); heads.append([p.detach().clone() for p in sup.head.parameters()])
        learn.fit(1, 1e-3, cbs=[rec, Keep()])
    assert learn.recorder.metric_names[1:-1] == ['train_loss', 'valid_loss', 'supcon', 'sil']
    head0 = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 16))
    for (pred, y, loss), f, hp in zip(rec.rows, feats, heads):
        assert len(pred) == len(y) == 32                                   # 2 views of 16, one label per row
        torch.testing.assert_close(y[:16], y[16:])
        for p, q in zip(head0.parameters(), hp): p.data.copy_(q)
        expect = F.cross_entropy(P(pred).float(), P(y)) + SupConLoss(0.1)(head0(P(f).float()), P(y)) + 3 * sil_of(f, y)
        torch.testing.assert_close(loss, expect.detach(), rtol=1e-5, atol=1e-6)
    assert not torch.equal(heads[0][0], sup.head[0].weight.detach())          # the head's parameters are in the optimizer
    assert any(p is sup.head[0].weight for pl in learn.opt.param_lists for p in pl)
    learn.save('m')                                                         # save/load: the model and the optimizer state (head slots included)
    w = [p.detach().clone() for p in learn.model.parameters()]
    with torch.no_grad():
        for p in learn.model.parameters(): p.zero_()
    learn.load('m')
    assert all(torch.equal(a, p) for a, p in zip(w, learn.model.parameters()))

def test_errors(folder):
    "No views for SupCon, multi-label and regression targets: a clear error naming the callback."
    dls = small_dls()
    mk = lambda cb: Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), loss_func=CrossEntropyLossFlat(), cbs=cb)
    learn = mk(SupConCallback())
    with pytest.raises(ValueError, match='SupConCallback needs several views'):
        with learn.no_bar(): learn.fit(1)
    X = torch.randn(64, 1, 8, 8)
    for y, lf in ((torch.randint(0, 2, (64, 10)).float(), nn.BCEWithLogitsLoss()), (torch.randn(64, 10), nn.MSELoss())):
        d = DataLoaders.from_dsets(TensorDataset(X, y), TensorDataset(X, y), bs=16, device='cpu')
        learn = Learner(d, nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), loss_func=lf, cbs=SoftSilhouetteCallback())
        with pytest.raises(TypeError, match='SoftSilhouetteCallback needs integer class labels'):
            with learn.no_bar(): learn.fit(1)

def test_export_from_folder_plain(folder, tmp_path):
    "Learner.export + load_learner + predict on a plain from_folder vision_learner (plum-dispatch 2.10 could not pickle it)."
    dls = folder_dls(folder)
    learn = vision_learner(dls, resnet18, pretrained=False, path=tmp_path)
    img = folder / 'valid' / '5' / '9.png'
    with learn.no_bar(): p1 = learn.predict(img)
    learn.export('plain.pkl')
    l2 = load_learner(tmp_path / 'plain.pkl')
    with l2.no_bar(): p2 = l2.predict(img)
    assert p1[0] == p2[0] and torch.allclose(p1[2], p2[2], atol=1e-6)

def test_fastai_pieces_on_method_learner(folder, tmp_path):
    "fastai's accuracy, error_rate, F1Score, top_k_accuracy, ClassificationInterpretation, predict, show_results on a method_learner Learner."
    import matplotlib; matplotlib.use('Agg')
    from sklearn.metrics import confusion_matrix, f1_score
    from fastai.interpret import ClassificationInterpretation
    from fastai.metrics import accuracy as fa_accuracy, error_rate, F1Score, top_k_accuracy
    from softsil_nb.learner import fit_method
    dls = folder_dls(folder)
    learn = method_learner(dls, 'ce+sil', arch='resnet18', feat_dim=32, proj_dim=16, path=tmp_path,
                           metrics=[fa_accuracy, error_rate, F1Score(average='macro'), top_k_accuracy])
    assert learn.weights['sil'] == SIL_WEIGHT == learn.sil.weight
    with learn.no_bar(), learn.no_logging():
        fresh = learn.validate()                                         # before any training: every column a number
        fit_method(learn, 1, 1e-3)
        vals = learn.validate()
        probs, y = learn.get_preds()
    names = ['valid_loss'] + list(learn.metrics.attrgot('name'))
    assert names == ['valid_loss', 'train_ce', 'train_sil', 'valid_ce', 'valid_sil', 'accuracy', 'error_rate', 'f1_score', 'top_k_accuracy']
    assert all(math.isfinite(v) for v in fresh) and all(math.isfinite(v) for v in vals)
    got = dict(zip(names, vals))
    pred = probs.argmax(1)
    assert got['accuracy'] == pytest.approx((pred == y).float().mean().item(), abs=1e-6)
    assert got['error_rate'] == pytest.approx(1 - got['accuracy'], abs=1e-6)
    assert got['f1_score'] == pytest.approx(f1_score(y, pred, average='macro'), abs=1e-6)
    top5 = (probs.topk(5, 1).indices == y[:, None]).any(1).float().mean().item()
    assert got['top_k_accuracy'] == pytest.approx(top5, abs=1e-6)
    assert got['train_sil'] == pytest.approx(got['valid_sil'], rel=1e-6)     # validate(): the train columns give the terms on its data
    interp = ClassificationInterpretation.from_learner(learn)
    assert (np.asarray(interp.confusion_matrix()) == confusion_matrix(y, pred, labels=range(10))).all()
    with learn.no_bar():
        lab, idx, p = learn.predict(folder / 'valid' / '4' / '8.png')
        learn.show_results(max_n=4)
    assert lab == dls.vocab[int(idx)] and p.shape == (10,)

def test_callbacks_on_method_learner_columns():
    "On a method_learner Learner the callback's column sits beside LossTermsCallback's, once per fit, and leaves after."
    dls = small_dls()
    learn = method_learner(dls, 'ce', arch_kwargs=dict(widths=(8, 16)), feat_dim=16, proj_dim=8, cbs=SoftSilhouetteCallback())
    with learn.no_bar(), learn.no_logging():
        for _ in range(2): learn.fit(1, 1e-3)
    names = learn.recorder.metric_names[1:-1]
    assert names.count('sil') == 1 and names[-1] == 'sil' and 'train_ce' in names
    assert 'sil' not in learn.metrics.attrgot('name')

def test_layer_module_or_function():
    "layer= a module or a function model -> module: its output are the features; a module outside the model is refused."
    dls = small_dls()
    for make_layer in (lambda m: m[2], None):
        torch.manual_seed(0)
        m = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        cb = SoftSilhouetteCallback(1.0, layer=make_layer if make_layer is not None else m[1], num_classes=10)
        learn = Learner(dls, m, loss_func=CrossEntropyLossFlat(), cbs=cb)
        layer = cb.layer(m) if callable(cb.layer) and not isinstance(cb.layer, nn.Module) else cb.layer
        rec, feats = fit_recording(learn, hook_output(layer, detach=False))
        for (pred, y, loss), f in zip(rec.rows, feats):
            torch.testing.assert_close(loss, (F.cross_entropy(pred, y) + sil_of(f, y)).detach(), rtol=1e-5, atol=1e-6)
    learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), loss_func=CrossEntropyLossFlat(), cbs=SoftSilhouetteCallback(layer=nn.Linear(2, 2)))
    with pytest.raises(ValueError, match='not part of the Learner'):
        with learn.no_bar(): learn.fit(1)

def test_silhouette_accepts_fastai_tensor_subclasses(folder):
    "dls.one_batch() gives TensorImage / TensorCategory: the soft and exact silhouettes take them, with the plain tensors' values."
    from softsil_nb.silhouette import soft_silhouette_samples, silhouette_samples, silhouette_score
    from fastai.torch_core import TensorImage, TensorCategory
    x, y = folder_dls(folder).one_batch()
    assert isinstance(x, TensorImage) and isinstance(y, TensorCategory)
    z = TensorImage(x.flatten(1)[:, :64].float())
    zp, yp = P(z), P(y)
    for kw in (dict(), dict(num_classes=10, check_inputs=False), dict(metric='euclidean')):
        torch.testing.assert_close(soft_silhouette_samples(z, y, **kw).silhouette, soft_silhouette_samples(zp, yp, **kw).silhouette)
    for metric in ('cosine', 'euclidean', 'sqeuclidean'):
        s = silhouette_samples(z, y, metric=metric)
        assert type(s) is torch.Tensor and torch.equal(s, silhouette_samples(zp, yp, metric=metric))
        assert silhouette_score(z, y, metric=metric) == silhouette_score(zp, yp, metric=metric)
    assert SoftSilhouetteLoss()(z, y).item() == SoftSilhouetteLoss()(zp, yp).item()
