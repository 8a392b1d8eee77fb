"Soft Silhouette Loss and SupCon against independent oracles: scikit-learn, brute-force loops, gradcheck, PML, SupContrast."
import pickle
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from sklearn import metrics as skm
from pytorch_metric_learning import losses as pml_losses
from softsil_nb.silhouette import METRICS, SOFT_MINS, DENOMINATORS
from softsil_nb.losses import SoftSilhouetteLoss, soft_silhouette_loss, SupConLoss, CombinedLoss

@st.composite
def batches(draw, min_n=4, max_n=32):
    n = draw(st.integers(min_n, max_n))
    n_labels = draw(st.integers(2, max(2, n // 2)))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    y = np.concatenate([np.arange(n_labels), rng.integers(0, n_labels, n - n_labels)])
    rng.shuffle(y)
    return torch.tensor(rng.normal(size=(n, draw(st.integers(2, 8))))), torch.tensor(y)

@settings(max_examples=50, deadline=None)
@given(batches(), st.sampled_from(METRICS))
def test_hard_equals_sklearn(batch, metric):
    x, y = batch
    counts = torch.bincount(y)
    valid = (counts[y] >= 2).numpy()
    ref = skm.silhouette_samples(F.normalize(x, dim=1).numpy(), y.numpy(), metric=metric)[valid]
    got = soft_silhouette_loss(x, y, metric=metric, soft_min='hard')
    assert abs(got.item() - (1 - ref.mean())) < 1e-6

def brute_force_loss(x, y, metric, tau, soft_min, den):
    "Loops over samples and classes, straight from the definitions (no shared code with the library)."
    z = F.normalize(x, dim=1)
    def d(u, v):
        if metric == 'cosine': return 1 - (u @ v)
        if metric == 'sqeuclidean': return ((u - v) ** 2).sum()
        return ((u - v) ** 2).sum().sqrt()
    ss = []
    for i in range(len(z)):
        own = [j for j in range(len(z)) if y[j] == y[i] and j != i]
        others = sorted(set(y.tolist()) - {y[i].item()})
        if not own or not others: continue
        a = sum(d(z[i], z[j]) for j in own) / len(own)
        dc = torch.stack([sum(d(z[i], z[j]) for j in range(len(z)) if y[j] == c) / (y == c).sum() for c in others])
        if soft_min == 'hard': b = dc.min()
        elif soft_min == 'softmax': b = (torch.softmax(-dc / tau, 0) * dc).sum()
        elif soft_min == 'logsumexp': b = (-tau * torch.log(torch.exp(-dc / tau).sum())).clamp_min(0)
        else: b = -tau * torch.log(torch.exp(-dc / tau).mean())
        m = torch.maximum(a, b) if den == 'max' else tau * torch.log(torch.exp(a / tau) + torch.exp(b / tau))
        ss.append((b - a) / m)
    return 1 - torch.stack(ss).mean()

@pytest.mark.parametrize('metric', METRICS)
@pytest.mark.parametrize('soft_min', SOFT_MINS)
@pytest.mark.parametrize('den', DENOMINATORS)
def test_against_brute_force_and_gradcheck(metric, soft_min, den):
    torch.manual_seed(0)
    x = torch.randn(10, 3, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 3, 3])
    kw = dict(metric=metric, temperature=0.5, soft_min=soft_min, denominator=den)
    assert abs(soft_silhouette_loss(x, y, **kw).item() - brute_force_loss(x.detach(), y, metric, 0.5, soft_min, den).item()) < 1e-10
    assert torch.autograd.gradcheck(lambda t: soft_silhouette_loss(t, y, **kw), (x,))

@pytest.mark.parametrize('metric', METRICS)
def test_duplicate_points_give_finite_gradients(metric):
    x = torch.tensor([[1., 0.], [1., 0.], [1., 0.], [0., 1.], [0., 1.]], requires_grad=True)
    for method in (['pairwise', 'classsum'] if metric != 'euclidean' else ['pairwise']):
        x.grad = None
        SoftSilhouetteLoss(metric=metric, method=method)(x, torch.tensor([0, 0, 1, 1, 1])).backward()
        assert torch.isfinite(x.grad).all()

@settings(max_examples=40, deadline=None)
@given(batches(), st.sampled_from(METRICS), st.sampled_from(['sample', 'class']), st.integers(0, 10_000))
def test_invariant_to_shuffling_and_renaming(batch, metric, average, seed):
    x, y = batch
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(y), generator=g)
    names = torch.randperm(1000, generator=g)[: int(y.max()) + 1] * 7 - 3000     # a random injective renaming
    base = soft_silhouette_loss(x, y, metric=metric, average=average)
    assert abs(soft_silhouette_loss(x[perm], names[y][perm], metric=metric, average=average).item() - base.item()) < 1e-10
    none = soft_silhouette_loss(x, y, metric=metric, average=average, reduction='none')
    assert none.shape == (len(y),) and abs(none.mean().item() - base.item()) < 1e-10

def test_separated_clusters_near_minimum_and_shuffled_near_one():
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(8, 64, generator=g)
    y = torch.arange(8).repeat_interleave(16)
    x = centers[y] + 0.05 * torch.randn(128, 64, generator=g)
    for metric in METRICS:
        assert SoftSilhouetteLoss(metric=metric)(x, y) < 0.1
        shuffled = torch.stack([SoftSilhouetteLoss(metric=metric)(x, y[torch.randperm(128, generator=g)]) for _ in range(5)]).mean()
        assert 0.9 < shuffled < 1.3, (metric, shuffled)

def test_num_classes_and_methods_agree():
    x, y = torch.randn(40, 6), torch.randint(0, 7, (40,))
    for metric in ('cosine', 'sqeuclidean'):
        ref = SoftSilhouetteLoss(metric=metric, method='pairwise')(x.double(), y)
        for kw in (dict(method='classsum'), dict(method='classsum', num_classes=7), dict(method='pairwise', num_classes=12)):
            assert abs(SoftSilhouetteLoss(metric=metric, **kw)(x.double(), y).item() - ref.item()) < 1e-10

def test_compiled_equals_eager():
    torch._dynamo.reset()
    loss = SoftSilhouetteLoss(num_classes=10, check_inputs=False)
    compiled = torch.compile(loss, fullgraph=True, backend='inductor')
    for seed in range(2):
        g = torch.Generator().manual_seed(seed)
        x, y = torch.randn(64, 16, generator=g, requires_grad=True), torch.randint(0, 10, (64,), generator=g)
        e = loss(x, y); gx, = torch.autograd.grad(e, x)
        c = compiled(x, y); gc, = torch.autograd.grad(c, x)
        assert abs(e.item() - c.item()) < 1e-5 and torch.allclose(gx, gc, atol=1e-5)

def test_bf16_autocast_is_finite_and_close():
    torch.manual_seed(0)
    lin = torch.nn.Linear(32, 16)
    x, y = torch.randn(256, 32), torch.randint(0, 10, (256,))
    ref = SoftSilhouetteLoss()(lin(x), y)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        emb = lin(x)
        assert emb.dtype == torch.bfloat16
        got = SoftSilhouetteLoss()(emb, y)
    assert got.dtype == torch.float32 and torch.isfinite(got) and abs(got.item() - ref.item()) < 1e-2

def test_degenerate_batches_are_graph_connected_zeros():
    for y in (torch.zeros(5, dtype=torch.long), torch.arange(5), torch.zeros(1, dtype=torch.long)):
        for red in ('mean', 'sum', 'none'):
            x = torch.randn(len(y), 3, requires_grad=True)
            l = SoftSilhouetteLoss(reduction=red)(x, y)
            assert l.requires_grad and (l == 0).all()
            l.sum().backward(); assert (x.grad == 0).all()

def test_errors_name_the_argument():
    x, y = torch.randn(4, 3), torch.tensor([0, 0, 1, 1])
    cases = [(lambda: SoftSilhouetteLoss()(x[:, None], y), ValueError, 'embeddings must be 2-D'),
             (lambda: SoftSilhouetteLoss()(x, y[:2]), ValueError, 'labels must have shape'),
             (lambda: SoftSilhouetteLoss()(x, y.float()), TypeError, 'labels must be integers'),
             (lambda: SoftSilhouetteLoss()(x.int(), y), TypeError, 'floating point'),
             (lambda: SoftSilhouetteLoss()(x.index_fill(0, torch.tensor([1]), float('inf')), y), ValueError, 'NaN or Inf'),
             (lambda: SoftSilhouetteLoss(num_classes=2)(x, y * 2), ValueError, '0..num_classes-1'),
             (lambda: SoftSilhouetteLoss(temperature=-1.), ValueError, 'temperature'),
             (lambda: SoftSilhouetteLoss(temperature='hot'), TypeError, 'temperature'),
             (lambda: SoftSilhouetteLoss(metric='euclidean', method='classsum'), ValueError, 'classsum'),
             (lambda: SupConLoss(temperature=0), ValueError, 'temperature')]
    for f, exc, msg in cases:
        with pytest.raises(exc, match=msg): f()

def test_pickles_and_moves():
    l = SoftSilhouetteLoss(metric='sqeuclidean', temperature=0.2, average='class')
    l2 = pickle.loads(pickle.dumps(l)).to('cpu')
    x, y = torch.randn(12, 4), torch.randint(0, 3, (12,))
    assert l2(x, y).item() == l(x, y).item()

def supcontrast_reference(features, labels, temperature):
    """SupCon as published in HobbitLong/SupContrast `losses.py` (BSD-2-Clause, Yonglong Tian), written here from the
    published algorithm with contrast_mode='all' and base_temperature=temperature (so the loss is not rescaled)."""
    bsz, n_views = features.shape[:2]
    mask = torch.eq(labels[:, None], labels[None, :]).float()
    contrast = torch.cat(torch.unbind(features, dim=1), dim=0)
    logits = contrast @ contrast.T / temperature
    logits = logits - logits.max(dim=1, keepdim=True).values.detach()
    mask = mask.repeat(n_views, n_views)
    logits_mask = torch.ones_like(mask).scatter(1, torch.arange(bsz * n_views)[:, None], 0)
    mask = mask * logits_mask
    log_prob = logits - torch.log((torch.exp(logits) * logits_mask).sum(1, keepdim=True))
    mean_log_prob_pos = (mask * log_prob).sum(1) / mask.sum(1).clamp_min(1)
    return -mean_log_prob_pos.view(n_views, bsz).mean()

@pytest.mark.parametrize('tau', [0.07, 0.1, 0.5])
def test_supcon_matches_pml_and_supcontrast(tau):
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(12, 2, 16, generator=g, dtype=torch.float64)
    y = torch.arange(6).repeat(2)                        # every anchor has a positive even with one view
    ours = SupConLoss(tau)(feats, y)
    assert abs(ours.item() - supcontrast_reference(F.normalize(feats, dim=2), y, tau).item()) < 1e-10
    flat = feats.transpose(0, 1).reshape(24, 16)
    assert abs(ours.item() - pml_losses.SupConLoss(temperature=tau)(flat, y.repeat(2)).item()) < 1e-10
    one = feats[:, 0]
    assert abs(SupConLoss(tau)(one, y).item() - pml_losses.SupConLoss(temperature=tau)(one, y).item()) < 1e-10

def test_supcon_anchors_without_positive():
    x = torch.randn(5, 4, requires_grad=True); y = torch.tensor([0, 0, 1, 1, 2])
    l = SupConLoss(reduction='none')(x, y)
    assert l[4] == 0 and torch.isfinite(l).all()
    assert abs(l.mean().item() - SupConLoss()(x, y).item()) < 1e-6
    assert abs(SupConLoss()(x, y).item() - pml_losses.SupConLoss(temperature=0.1)(x, y).item()) < 1e-5
    SupConLoss()(x, y).backward(); assert torch.isfinite(x.grad).all()

def test_combined_none_reduction_per_sample():
    pred = (torch.randn(8, 3), torch.randn(8, 5), torch.randn(8, 4))
    y = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    lf = CombinedLoss(ce=1, supcon=1, sil=1)
    m = lf(pred, y); lf.reduction = 'none'; v = lf(pred, y)
    assert v.shape == (8,) and abs(v.mean().item() - m.item()) < 1e-5
    assert set(lf.last) == {'ce', 'supcon', 'sil'}

def test_center_loss_brute_force_gradcheck_and_errors():
    from softsil_nb.losses import CenterLoss
    torch.manual_seed(1)
    cl = CenterLoss(3, 4).double()
    with torch.no_grad(): cl.centers.normal_()
    x = torch.randn(9, 4, dtype=torch.float64, requires_grad=True); y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 0, 2])
    ref = sum(0.5 * float(((x[i] - cl.centers[y[i]]) ** 2).sum().detach()) for i in range(9)) / 9
    assert abs(cl(x, y).item() - ref) < 1e-12
    assert torch.autograd.gradcheck(lambda t, c: torch.func.functional_call(cl, {'centers': c}, (t, y)),
                                    (x, cl.centers.detach().clone().requires_grad_()))
    assert abs(CenterLoss(3, 4, reduction='sum').double()(x, y).item() - 9 * CenterLoss(3, 4).double()(x, y).item()) < 1e-12
    assert CenterLoss(3, 4, reduction='none')(x.float(), y).shape == (9,)
    with pytest.raises(ValueError, match='0..num_classes-1'): cl(x, torch.tensor([0] * 8 + [3]))
    with pytest.raises(ValueError, match='embedding_size'): cl(x[:, :2], y)
    with pytest.raises(TypeError, match='integers'): cl(x, y.float())

# --- float32 numerics and argument checks (issue 12 section 2) ---
from softsil_nb.losses import supcon_loss, PMLLoss
from softsil_nb.silhouette import soft_silhouette_samples

@pytest.mark.parametrize('metric', ['sqeuclidean', 'euclidean'])
@pytest.mark.parametrize('method', ['classsum', 'pairwise'])
@pytest.mark.parametrize('offset', [1e4, 1e6])
def test_float32_loss_translation_invariant(metric, method, offset):
    if metric == 'euclidean' and method == 'classsum': return
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 4, (64,), generator=g)
    x = torch.randn(64, 8, generator=g) + 2 * torch.randn(4, 8, generator=g)[y]
    xo = x + offset
    ref = soft_silhouette_loss(xo.double(), y, metric=metric, normalize=False, method=method)   # float64 on the same float32 array
    ref0 = soft_silhouette_loss(x.double(), y, metric=metric, normalize=False, method=method)
    assert abs(ref.item() - ref0.item()) < 1e-3
    got = soft_silhouette_loss(xo, y, metric=metric, normalize=False, method=method)
    assert got.dtype == torch.float32 and abs(got.item() - ref.item()) < 1e-5

def test_tiny_norms_classsum_equals_pairwise():
    z = torch.randn(8, 3, dtype=torch.float64); z[0] *= 1e-13; z[1] = 0; y = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    for metric in ('cosine', 'sqeuclidean'):
        p = soft_silhouette_loss(z, y, metric=metric, method='pairwise'); c = soft_silhouette_loss(z, y, metric=metric, method='classsum')
        assert torch.isfinite(p) and abs(p.item() - c.item()) < 1e-10

@pytest.mark.parametrize('tau', [1e-39, 1e-45, 1e39, 1e46, 1e300])
def test_temperatures_outside_float32_range_are_finite(tau):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(24, 5, generator=g, requires_grad=True), torch.arange(4).repeat(6)
    for soft_min in ('softmax', 'logmeanexp'):
        for den in ('max', 'smoothmax'):
            l = soft_silhouette_loss(x, y, temperature=tau, soft_min=soft_min, denominator=den)
            g_, = torch.autograd.grad(l, x)
            assert torch.isfinite(l) and torch.isfinite(g_).all(), (soft_min, den)
            ref = soft_silhouette_loss(x.detach().double(), y, temperature=tau, soft_min=soft_min, denominator=den)
            assert abs(l.item() - ref.item()) < 1e-5, (soft_min, den, l.item(), ref.item())
    hard = soft_silhouette_loss(x, y, soft_min='hard')
    if tau < 1: assert abs(soft_silhouette_loss(x, y, temperature=tau).item() - hard.item()) < 1e-5
    l = SupConLoss(temperature=tau)(x, y); g_, = torch.autograd.grad(l, x)
    assert torch.isfinite(l) and torch.isfinite(g_).all()

def test_logmeanexp_large_temperature_no_cancellation():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 6, generator=g), torch.arange(5).repeat(8)
    for tau in (1e4, 1e8):
        got = soft_silhouette_samples(x, y, temperature=tau, soft_min='logmeanexp')
        ref = soft_silhouette_samples(x.double(), y, temperature=tau, soft_min='logmeanexp')
        np.testing.assert_allclose(got.nearest_other.numpy(), ref.nearest_other.numpy(), atol=1e-6)
        mean_other = soft_silhouette_samples(x.double(), y, temperature=1e30, soft_min='softmax').nearest_other
        np.testing.assert_allclose(ref.nearest_other.numpy(), mean_other.numpy(), atol=1e-3)

def test_numbers_of_any_kind_and_one_refusal():
    x, y = torch.randn(12, 4), torch.arange(3).repeat(4)
    for t in (np.float32(0.1), np.float64(0.1), np.int64(1), 1, 0.1):
        assert torch.isfinite(SoftSilhouetteLoss(temperature=t)(x, y)) and torch.isfinite(SupConLoss(temperature=t)(x, y))
        assert torch.isfinite(soft_silhouette_loss(x, y, temperature=t)) and torch.isfinite(supcon_loss(x, y, temperature=t))
        assert torch.isfinite(CombinedLoss(supcon=1, supcon_temperature=t)((torch.randn(12, 3), x, x), y))
    for bad, exc in ((True, TypeError), ('0.1', TypeError), (torch.tensor(0.1), TypeError), (None, TypeError),
                     (float('inf'), ValueError), (float('nan'), ValueError), (0, ValueError), (-1., ValueError)):
        msgs = set()
        for f in (lambda: SoftSilhouetteLoss(temperature=bad), lambda: SupConLoss(temperature=bad),
                  lambda: soft_silhouette_loss(x, y, temperature=bad), lambda: supcon_loss(x, y, temperature=bad),
                  lambda: CombinedLoss(supcon=1, supcon_temperature=bad)):
            with pytest.raises(exc, match='temperature') as e: f()
            msgs.add(str(e.value))
        assert len(msgs) == 1, msgs                                      # the same words from every loss
    for w in (np.float32(0.5), np.int64(2)): assert CombinedLoss(ce=w).weights['ce'] == float(w)
    with pytest.raises(TypeError, match='weight ce'): CombinedLoss(ce=True)
    with pytest.raises(ValueError, match='weight sil'): CombinedLoss(sil=float('nan'))

def test_smaller_holes_get_clear_errors():
    x, y = torch.randn(4, 3), torch.tensor([0, 0, 1, 1])
    cases = [(lambda: soft_silhouette_loss(torch.zeros(4, 0), y), ValueError, '0 features'),
             (lambda: SoftSilhouetteLoss()(torch.zeros(4, 0), y), ValueError, '0 features'),
             (lambda: supcon_loss(torch.zeros(4, 0), y), ValueError, '0 features'),
             (lambda: soft_silhouette_loss(x, y, num_classes=2.5), TypeError, 'num_classes'),
             (lambda: soft_silhouette_loss(x, y, num_classes=0), ValueError, 'num_classes'),
             (lambda: soft_silhouette_loss(x, y, num_classes=-1, check_inputs=False), ValueError, 'num_classes'),
             (lambda: SoftSilhouetteLoss(num_classes=True), TypeError, 'num_classes'),
             (lambda: SoftSilhouetteLoss(normalize='no'), TypeError, 'normalize'),
             (lambda: soft_silhouette_loss(x, y, normalize='no'), TypeError, 'normalize'),
             (lambda: soft_silhouette_samples(x, y, eps=float('nan')), ValueError, 'eps'),
             (lambda: soft_silhouette_samples(x, y, eps=0), ValueError, 'eps'),
             (lambda: CombinedLoss(sil=1, sil_loss=dict(temperature=0.2)), TypeError, 'sil_loss'),
             (lambda: CombinedLoss(pml=1, pml_loss='triplet'), TypeError, 'pml_loss'),
             (lambda: PMLLoss('triplet'), TypeError, 'loss'),
             (lambda: CombinedLoss()(torch.randn(4, 2, 3), y), ValueError, 'logits must be 2-D'),
             (lambda: CombinedLoss()(torch.full((4, 3), float('nan')), y), ValueError, 'logits contain NaN or Inf'),
             (lambda: CombinedLoss(ce=1, supcon=1)((torch.randn(4, 3), torch.randn(4, 5), torch.full((4, 2), float('nan'))), y),
              ValueError, 'projections contain NaN or Inf'),
             (lambda: CombinedLoss(ce=0, sil=1)((torch.randn(4, 3), torch.full((4, 5), float('inf')), torch.randn(4, 2)), y),
              ValueError, 'features contain NaN or Inf'),
             (lambda: supcon_loss(torch.randn(4, 2, 3), torch.tensor([0, 1, 2])), ValueError, r'\[4\] \(one per sample\) or \[8\]'),
             (lambda: SupConLoss()(torch.randn(4, 2, 3), torch.tensor([0, 1, 2])), ValueError, r'\[4\] \(one per sample\) or \[8\]')]
    for loss in (SoftSilhouetteLoss(), SoftSilhouetteLoss(check_inputs=False), SupConLoss(), SupConLoss(check_inputs=False),
                 CombinedLoss(), CombinedLoss(check_inputs=False)):
        cases.append((lambda loss=loss: loss(x, None), TypeError, 'labels are required'))
    cases.append((lambda: SupConLoss()(torch.randn(4, 2, 3), None), TypeError, 'labels are required'))
    for f, exc, msg in cases:
        with pytest.raises(exc, match=msg): f()

def test_combined_empty_batch_is_graph_connected_zero():
    for kw in (dict(), dict(ce=1, supcon=1, sil=1)):
        for red in ('mean', 'sum', 'none'):
            logits = torch.randn(0, 3, requires_grad=True)
            pred = (logits, torch.randn(0, 5), torch.randn(0, 4)) if len(kw) else logits
            l = CombinedLoss(reduction=red, **kw)(pred, torch.zeros(0, dtype=torch.long))
            assert l.requires_grad and (l == 0).all() and l.shape == ((0,) if red == 'none' else ())
            l.sum().backward()
