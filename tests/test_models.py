"Tests of softsil_nb.models: shapes, the parts of the embedding classifier, fastai integration, freezing, pickling."
import io
import math
import pickle
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.data import TensorDataset
from hypothesis import given, settings, strategies as st
from fastai.data.core import DataLoaders
from fastai.learner import Learner, load_learner
from fastai.callback.progress import ProgressCallback
from fastai.vision.models import xresnet

from softsil_nb.models import (HalvingPool, SmallCNN, EmbeddingClassifier, embedding_splitter, body_out_features, create_model)


class TupleCE:
    "Cross-entropy on pred[0]; softmax of pred[0] as activation, its argmax as decoding (picklable)."
    def __call__(self, pred, y): return F.cross_entropy(pred[0], y)
    def activation(self, pred): return (F.softmax(pred[0], 1), *pred[1:])
    def decodes(self, pred): return pred[0].argmax(1)


def tiny_learner(model, n=64, sz=8, n_classes=4, n_in=1, **kw):
    g = torch.Generator().manual_seed(0)
    ds = lambda n: TensorDataset(torch.randn(n, n_in, sz, sz, generator=g), torch.randint(0, n_classes, (n,), generator=g))
    learn = Learner(DataLoaders.from_dsets(ds(n), ds(n // 2), bs=16, device='cpu'), model, loss_func=TupleCE(),
                    splitter=embedding_splitter, **kw)
    learn.remove_cb(ProgressCallback)
    return learn


def small(**kw):
    "A fast model for the fastai tests."
    return create_model(n_classes=4, feat_dim=16, proj_dim=8, widths=(8, 16), **kw)


def expected_side(s, n_blocks=3, min_size=2):
    "Side after the blocks, from the rule: halve (rounding up) while the side is at least 2 * min_size."
    for _ in range(n_blocks): s = math.ceil(s / 2) if s >= 2 * min_size else s
    return s


# ---------------------------------------------------------------------------------------------- SmallCNN
@pytest.mark.parametrize('n_in', [1, 3])
@pytest.mark.parametrize('sz, side', [(8, 2), (20, 3), (28, 4), (64, 8)])
def test_small_cnn_and_classifier_shapes(n_in, sz, side):
    x = torch.randn(4, n_in, sz, sz)
    assert side == expected_side(sz)
    assert SmallCNN(n_in)(x).shape == (4, 128, side, side)
    m = EmbeddingClassifier(SmallCNN(n_in), n_classes=10, feat_dim=64, proj_dim=32)
    out = m(x)
    assert type(out) is tuple and [t.shape for t in out] == [(4, 10), (4, 64), (4, 32)]


@settings(max_examples=20, deadline=None)
@given(st.integers(4, 70), st.integers(4, 70), st.integers(1, 3), st.integers(1, 4))
def test_small_cnn_pooling_adapts(h, w, min_size, n_blocks):
    widths = tuple(4 * (i + 1) for i in range(n_blocks))
    out = SmallCNN(2, widths=widths, min_size=min_size).eval()(torch.randn(1, 2, h, w))
    eh, ew = h, w
    for _ in range(n_blocks):
        if min(eh, ew) >= 2 * min_size: eh, ew = math.ceil(eh / 2), math.ceil(ew / 2)
    assert out.shape == (1, widths[-1], eh, ew)


def test_halving_pool():
    x = torch.arange(25.).reshape(1, 1, 5, 5)
    y = HalvingPool(2)(x)
    assert y.shape == (1, 1, 3, 3) and y[0, 0, 0, 0] == 6 and y[0, 0, 2, 2] == 24
    assert HalvingPool(3)(x) is x


def test_small_cnn_structure_and_errors():
    m = SmallCNN(1, widths=(8, 16), n_convs=2)
    convs = [l for l in m.modules() if isinstance(l, nn.Conv2d)]
    bns = [l for l in m.modules() if isinstance(l, nn.BatchNorm2d)]
    assert [c.out_channels for c in convs] == [8, 8, 16, 16] and len(bns) == 4 and all(c.bias is None for c in convs)
    assert m.n_out == 16
    with pytest.raises(ValueError, match='widths'): SmallCNN(widths=())
    with pytest.raises(ValueError, match='n_convs'): SmallCNN(n_convs=0)


# ---------------------------------------------------------------------------------------------- EmbeddingClassifier
def test_outputs_are_the_parts():
    m = EmbeddingClassifier(SmallCNN(), 5, feat_dim=32, proj_dim=24).eval()
    x = torch.randn(6, 1, 28, 28)
    logits, feats, proj = m(x)
    pooled = m.body(x).mean((2, 3))
    neck = m.encoder.neck
    torch.testing.assert_close(feats, F.relu(neck[1](neck[0](pooled))))
    torch.testing.assert_close(logits, feats @ m.classifier.weight.T + m.classifier.bias)
    torch.testing.assert_close(proj, m.projector(feats))
    assert not torch.allclose(proj.norm(dim=1), torch.ones(6))            # not normalised inside
    assert (feats >= 0).all()
    assert (EmbeddingClassifier(SmallCNN(), 5, act_cls=None).eval()(x)[1] < 0).any()


def test_gradient_reaches_every_parameter():
    m = EmbeddingClassifier(SmallCNN(widths=(4, 8)), 3, feat_dim=8, proj_dim=4)
    logits, feats, proj = m(torch.randn(8, 1, 12, 12))
    (logits.sum() + feats.sum() + proj.pow(2).sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


@pytest.mark.parametrize('training', [True, False])
def test_inferring_n_body_out_leaves_the_body_alone(training):
    body = SmallCNN(widths=(4, 8)).double().train(training)
    before = {k: v.clone() for k, v in body.state_dict().items()}
    m = EmbeddingClassifier(body, 3)
    assert m.n_body_out == 8 and body.training == training
    for k, v in body.state_dict().items(): assert torch.equal(v, before[k]), k
    assert m.double()(torch.randn(2, 1, 8, 8, dtype=torch.float64))[0].dtype == torch.float64


def test_body_out_features_kinds():
    assert body_out_features(nn.Sequential(nn.Flatten(), nn.Linear(64, 48))) == 48
    assert body_out_features(nn.Sequential(nn.Conv2d(3, 5, 3), nn.Flatten())) == 5 * 30 * 30
    big = nn.Sequential(nn.Conv2d(1, 6, 3), nn.AvgPool2d(40))              # needs an input of at least 42
    assert body_out_features(big) == 6
    with pytest.raises(ValueError, match='n_body_out'): body_out_features(nn.Identity())
    with pytest.raises(ValueError, match='4-D feature map or 2-D'): body_out_features(nn.Sequential(nn.Conv1d(2, 3, 3)))


def test_classifier_arguments():
    with pytest.raises(ValueError, match='n_classes must be'): EmbeddingClassifier(SmallCNN(), 0)
    with pytest.raises(ValueError, match='feat_dim must be'): EmbeddingClassifier(SmallCNN(), 2, feat_dim=1.5)
    m = EmbeddingClassifier(nn.Identity(), 3, n_body_out=7, dropout=0.5)
    assert m.n_body_out == 7 and m.dropout.p == 0.5 and m(torch.randn(4, 7))[0].shape == (4, 3)


def test_splitter_partitions_parameters():
    m = small()
    enc, heads = embedding_splitter(m)
    assert {id(p) for p in enc} == {id(p) for p in m.encoder.parameters()}
    assert {id(p) for p in heads} == {id(p) for p in [*m.projector.parameters(), *m.classifier.parameters()]}
    assert len(enc) + len(heads) == len(list(m.parameters())) == len({id(p) for p in enc + heads})


# ---------------------------------------------------------------------------------------------- fastai
def test_get_preds_gathers_the_tuple():
    learn = tiny_learner(small())
    learn.fit(1, 1e-2)
    (probs, feats, proj), targs = learn.get_preds()
    assert (probs.shape, feats.shape, proj.shape, targs.shape) == ((32, 4), (32, 16), (32, 8), (32,))
    torch.testing.assert_close(probs.sum(1), torch.ones(32))
    x = learn.dls.valid.dataset.tensors[0]
    learn.model.eval()
    with torch.no_grad(): ref = learn.model(x)
    torch.testing.assert_close(probs, F.softmax(ref[0], 1)); torch.testing.assert_close(feats, ref[1]); torch.testing.assert_close(proj, ref[2])
    _, _, dec = learn.get_preds(with_decoded=True)
    assert torch.equal(dec, probs.argmax(1))


def snapshot(module): return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(module, before): return [k for k, v in module.state_dict().items() if not torch.equal(v, before[k])]


def test_unfrozen_training_changes_the_encoder():
    m = small()
    enc = snapshot(m.encoder)
    tiny_learner(m).fit(1, 1e-2)
    assert changed(m.encoder, enc)                                          # so the frozen tests below can fail


def test_freeze_encoder_trains_the_classifier_only():
    m = small()
    m.freeze_encoder()
    enc, clf, proj = snapshot(m.encoder), snapshot(m.classifier), snapshot(m.projector)
    tiny_learner(m).fit(1, 1e-2)
    assert changed(m.encoder, enc) == []                                     # parameters and BatchNorm statistics
    assert sorted(changed(m.classifier, clf)) == ['bias', 'weight']
    assert changed(m.projector, proj) == []                                  # not in the loss: no gradient
    m.train()
    assert m.training and not m.encoder.training and m.classifier.training
    m.unfreeze_encoder()
    assert m.encoder.training and all(p.requires_grad for p in m.encoder.parameters())
    enc = snapshot(m.encoder)
    tiny_learner(m).fit(1, 1e-2)
    assert changed(m.encoder, enc)


def test_fastai_freeze_with_splitter():
    m = small()
    params = {n: p.detach().clone() for n, p in m.encoder.named_parameters()}
    clf = snapshot(m.classifier)
    learn = tiny_learner(m, train_bn=False)
    learn.freeze()
    learn.fit(1, 1e-2)
    assert all(torch.equal(p, params[n]) for n, p in m.encoder.named_parameters())
    assert changed(m.classifier, clf)


# ---------------------------------------------------------------------------------------------- create_model
@pytest.mark.parametrize('arch, kw', [('resnet18', {}), ('xresnet18', {}),         # by name, n_body_out inferred
                                      (torchvision.models.resnet18, dict(n_body_out=512)), (xresnet.xresnet18, dict(n_body_out=512))])
def test_create_model_architectures_on_grey_28(arch, kw):
    m = create_model(arch, n_classes=10, n_in=1, feat_dim=64, proj_dim=32, **kw)
    assert m.n_body_out == 512
    first = next(l for l in m.body.modules() if isinstance(l, nn.Conv2d))
    assert first.in_channels == 1
    assert not any(isinstance(l, (nn.AdaptiveAvgPool2d, nn.Linear)) for l in m.body.modules())   # cut before the head
    assert [t.shape for t in m(torch.randn(2, 1, 28, 28))] == [(2, 10), (2, 64), (2, 32)]


def test_create_model_downloads_nothing(monkeypatch):
    def no_download(*a, **k): raise AssertionError('create_model tried to download weights')
    monkeypatch.setattr(torch.hub, 'load_state_dict_from_url', no_download)
    monkeypatch.setattr(torch.hub, 'download_url_to_file', no_download)
    monkeypatch.setattr(torchvision.models._api, 'load_state_dict_from_url', no_download)
    create_model('resnet18', n_body_out=512)
    create_model('xresnet18', n_body_out=512)
    with pytest.raises(AssertionError, match='download'): create_model('resnet18', pretrained=True)   # the patch works


def test_create_model_small_cnn_and_options():
    m = create_model()
    assert type(m.body) is SmallCNN and m.n_body_out == 128 and m.classifier.out_features == 10
    m = create_model(SmallCNN, n_in=3, widths=(8, 16), n_convs=2, dropout=0.1, act_cls=None)
    assert m.n_body_out == 16 and m.dropout.p == 0.1 and len(m.encoder.neck) == 2
    body = nn.Sequential(nn.Conv2d(1, 6, 3), nn.ReLU())
    assert create_model(body).body is body


@pytest.mark.parametrize('arch, kw, exc, msg', [
    ('resnet81', {}, ValueError, "unknown arch 'resnet81'; did you mean 'resnet18'"),
    ('no_such_net_at_all', {}, ValueError, "unknown arch 'no_such_net_at_all'"),
    ('small_cnn', dict(pretrained=True), ValueError, 'pretrained'),
    ('resnet18', dict(widths=(8,)), TypeError, 'unexpected arguments'),
    (42, {}, TypeError, 'arch must be'),
])
def test_create_model_errors(arch, kw, exc, msg):
    with pytest.raises(exc, match=msg): create_model(arch, **kw)


# ---------------------------------------------------------------------------------------------- pickling
@pytest.mark.parametrize('arch', ['small_cnn', 'xresnet18'])
def test_model_round_trip(arch):
    m = create_model(arch, n_classes=4).eval()
    buf = io.BytesIO(); torch.save(m, buf); buf.seek(0)
    m2 = torch.load(buf, weights_only=False).eval()
    x = torch.randn(3, 1, 20, 20)
    with torch.no_grad():
        for a, b in zip(m(x), m2(x)): assert torch.equal(a, b)
    m.freeze_encoder()
    m3 = pickle.loads(pickle.dumps(m))
    assert m3.encoder_frozen and not m3.train().encoder.training


def test_learner_save_load_round_trip(tmp_path):
    learn = tiny_learner(small(), path=tmp_path)
    learn.fit(1, 1e-2)
    learn.save('m')
    learn2 = tiny_learner(small(), path=tmp_path).load('m')
    x = torch.randn(5, 1, 8, 8)
    learn.model.eval(); learn2.model.eval()
    with torch.no_grad():
        for a, b in zip(learn.model(x), learn2.model(x)): assert torch.equal(a, b)
    assert pickle.loads(pickle.dumps(embedding_splitter)) is embedding_splitter

# ---------------------------------------------------------------- EfficientNet-B0, the paper's encoder
def test_efficientnet_b0_heads_against_torchvision():
    import torchvision
    from softsil_nb.models import efficientnet_b0_model
    m = create_model('efficientnet_b0', n_classes=5, n_in=3, feat_dim=1280, proj_dim=128).eval()
    tv = torchvision.models.efficientnet_b0(weights=None).eval()
    tv.features.load_state_dict(m.body[0].state_dict()) # the body is torchvision's `features`, unchanged
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits, f, z = m(x)
        ref = tv.avgpool(tv.features(x)).flatten(1) # torchvision's own pooled features (what its classifier reads)
    assert torch.allclose(f, ref, atol=1e-5) and f.shape == (2, 1280)
    assert torch.allclose(logits, m.classifier(ref), atol=1e-5) and logits.shape == (2, 5)
    assert torch.allclose(z, m.projector(ref), atol=1e-5) and z.shape == (2, 128)
    assert [type(l).__name__ for l in m.projector] == ['Linear', 'ReLU', 'Linear'] and m.projector[0].out_features == 1280
    assert m.dropout.p == tv.classifier[0].p == 0.2
    n_tv = sum(p.numel() for p in tv.features.parameters())
    assert sum(p.numel() for p in m.encoder.parameters()) == n_tv # no neck
    g = efficientnet_b0_model(3, n_in=1, feat_dim=64, proj_dim=16).train() # grey images, a neck to 64
    assert g.body[0][0][0].in_channels == 1 and g.encoder.neck[0].in_features == 1280
    out = g(torch.randn(2, 1, 16, 16)); sum(o.sum() for o in out).backward()
    assert [o.shape for o in out] == [(2, 3), (2, 64), (2, 16)] and g.body[0][0][0].weight.grad is not None
