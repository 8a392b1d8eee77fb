"Exact silhouette against scikit-learn; distances against scikit-learn; soft silhouette properties."
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from sklearn import metrics as skm
from softsil_nb.silhouette import (METRICS, pairwise_distances, silhouette_samples, silhouette_score,
                                   soft_silhouette_samples, SOFT_MINS, DENOMINATORS)

@st.composite
def labelled_points(draw, min_n=3, max_n=40):
    n = draw(st.integers(min_n, max_n))
    n_labels = draw(st.integers(2, n - 1))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.arange(n_labels), rng.integers(0, n_labels, n - n_labels)])
    rng.shuffle(labels)
    codes = rng.choice(10_000, n_labels, replace=False) - 5_000        # arbitrary integer labels
    x = rng.normal(size=(n, draw(st.integers(1, 6)))) * draw(st.sampled_from([1e-2, 1., 30.]))
    return x, codes[labels]

@settings(max_examples=60, deadline=None)
@given(labelled_points(), st.sampled_from(METRICS), st.sampled_from([None, 1, 5]))
def test_silhouette_equals_sklearn(data, metric, block):
    x, y = data
    ours = silhouette_samples(torch.tensor(x), torch.tensor(y), metric=metric, block_size=block).numpy()
    np.testing.assert_allclose(ours, skm.silhouette_samples(x, y, metric=metric), atol=1e-6)

def test_silhouette_blocks_bound_memory():
    "A block never holds more than block_size x N distances, every pair is computed once: check by recording each block built."
    x, y = torch.randn(500, 4, dtype=torch.float64), torch.randint(0, 5, (500,))
    seen = []
    import softsil_nb.silhouette as S
    orig = S._euclidean_rows
    def spy(a, bt, s, e, buf):
        d = orig(a, bt, s, e, buf); seen.append(d.shape); return d
    S._euclidean_rows = spy
    try: v = silhouette_samples(x, y, block_size=50)
    finally: S._euclidean_rows = orig
    assert max(r * c for r, c in seen) == 50 * 500 and len(seen) == 10
    assert sum(r * c for r, c in seen) == sum(50 * (500 - s) for s in range(0, 500, 50))      # the upper triangle of blocks only
    np.testing.assert_allclose(v.numpy(), skm.silhouette_samples(x.numpy(), y.numpy()), atol=1e-9)
    for bs in (1, 7, 499, 500, 10_000):                                   # uneven and degenerate blocks give the same values
        np.testing.assert_allclose(silhouette_samples(x, y, block_size=bs).numpy(), v.numpy(), atol=1e-12)

def test_silhouette_score_label_errors():
    x = torch.randn(5, 2)
    with pytest.raises(ValueError, match='Number of labels is 1'): silhouette_score(x, torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match='Number of labels is 5'): silhouette_score(x, torch.arange(5))
    with pytest.raises(TypeError, match='labels must be integers'): silhouette_score(x, torch.zeros(5))

@pytest.mark.parametrize('metric', METRICS)
def test_pairwise_distances_match_sklearn_and_have_finite_grads(metric):
    x = np.random.default_rng(1).normal(size=(30, 5)); x[3] = x[4]          # a duplicate
    np.testing.assert_allclose(pairwise_distances(torch.tensor(x), metric=metric).numpy(),
                               skm.pairwise_distances(x, metric=metric), atol=1e-7)
    t = torch.tensor(x, requires_grad=True)
    pairwise_distances(t, metric=metric).sum().backward()
    assert torch.isfinite(t.grad).all()

@settings(max_examples=40, deadline=None)
@given(labelled_points(min_n=4), st.sampled_from(['cosine', 'sqeuclidean']), st.sampled_from(SOFT_MINS),
       st.sampled_from(DENOMINATORS), st.booleans())
def test_classsum_equals_pairwise(data, metric, soft_min, den, normalize):
    x, y = data
    kw = dict(metric=metric, soft_min=soft_min, denominator=den, normalize=normalize, temperature=0.3)
    p = soft_silhouette_samples(torch.tensor(x), torch.tensor(y), method='pairwise', **kw)
    c = soft_silhouette_samples(torch.tensor(x), torch.tensor(y), method='classsum', **kw)
    scale = 1 + float(np.abs(x).max()) ** 2
    for u, v in zip(p, c): np.testing.assert_allclose(u.double().numpy(), v.double().numpy(), atol=1e-9 * scale)

@settings(max_examples=40, deadline=None)
@given(labelled_points(min_n=4), st.sampled_from(METRICS), st.sampled_from(SOFT_MINS), st.sampled_from(DENOMINATORS))
def test_soft_silhouette_bounded(data, metric, soft_min, den):
    x, y = data
    r = soft_silhouette_samples(torch.tensor(x), torch.tensor(y), metric=metric, soft_min=soft_min, denominator=den)
    assert (r.silhouette.abs() <= 1 + 1e-12).all()
    hard = soft_silhouette_samples(torch.tensor(x), torch.tensor(y), metric=metric, soft_min='hard')
    if soft_min == 'logsumexp': assert (r.nearest_other <= hard.nearest_other + 1e-9).all() and (r.nearest_other >= 0).all()
    else: assert (r.nearest_other >= hard.nearest_other - 1e-9).all()
    counts = {v: (y == v).sum() for v in set(y.tolist())}
    np.testing.assert_array_equal(r.valid.numpy(), np.array([counts[v] >= 2 for v in y]))

# --- float32 numerics and input checks (issue 12 section 2), speed paths (issue 17) ---

def _clusters(n=400, d=8, c=4, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n); x = rng.normal(size=(n, d)) + 2.0 * rng.normal(size=(c, d))[y]
    return x.astype(np.float32), y

@settings(max_examples=25, deadline=None)
@given(st.sampled_from(['euclidean', 'sqeuclidean']), st.sampled_from([0., 1e2, 1e3, 1e4, 1e5, 1e6]),
       st.integers(0, 2**31 - 1))
def test_float32_silhouette_translation_invariant_like_sklearn(metric, offset, seed):
    "float32 input far from the origin: equal to scikit-learn on the same float32 array (which computes in float64)."
    x, y = _clusters(200, 5, 3, seed)
    rng = np.random.default_rng(seed)
    xo = (x + offset * rng.choice([-1, 1], x.shape[1])).astype(np.float32)
    ref = skm.silhouette_samples(xo, y, metric=metric)
    ours = silhouette_samples(torch.tensor(xo), torch.tensor(y), metric=metric)
    assert ours.dtype == torch.float32
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5)
    assert abs(silhouette_score(torch.tensor(xo), torch.tensor(y), metric=metric) - ref.mean()) < 1e-5

@pytest.mark.parametrize('metric', ['euclidean', 'sqeuclidean'])
@pytest.mark.parametrize('offset', [1e4, 1e6])
def test_float32_pairwise_distances_translation_invariant(metric, offset):
    x, _ = _clusters(60, 6, 3)
    xo = (x + offset).astype(np.float32)
    ref = skm.pairwise_distances(xo.astype(np.float64), metric=metric)
    got = pairwise_distances(torch.tensor(xo), metric=metric).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-5 * (ref.max() if metric == 'sqeuclidean' else 1))
    got = pairwise_distances(torch.tensor(xo[:20]), torch.tensor(xo[20:]), metric=metric).numpy()
    np.testing.assert_allclose(got, ref[:20, 20:], atol=1e-5 * (ref.max() if metric == 'sqeuclidean' else 1))

def test_float32_cosine_silhouette_like_sklearn():
    x, y = _clusters(300, 8, 4)
    np.testing.assert_allclose(silhouette_samples(torch.tensor(x), torch.tensor(y), metric='cosine').numpy(),
                               skm.silhouette_samples(x, y, metric='cosine'), atol=1e-5)

@pytest.mark.parametrize('metric', METRICS)
def test_large_float64_equals_sklearn_all_paths(metric):
    "The class-sum identity (cosine, sqeuclidean) and the blocked one-hot matmul (euclidean) against scikit-learn."
    rng = np.random.default_rng(3)
    y = rng.integers(0, 7, 1500); y[:3] = 99                    # and a singleton class
    y[0] = 1234; x = rng.normal(size=(1500, 12)) + rng.normal(size=(1235, 12))[y % 1235] * 1.5
    ref = skm.silhouette_samples(x, y, metric=metric)
    for bs in (None, 7, 1500):
        np.testing.assert_allclose(silhouette_samples(torch.tensor(x), torch.tensor(y), metric=metric, block_size=bs).numpy(), ref, atol=1e-9)

def test_float16_and_bfloat16_computed_in_float32():
    x, y = _clusters(100, 4, 3)
    x = x * 300                                                  # squared distances beyond float16's 65504
    for dt in (torch.float16, torch.bfloat16):
        xh = torch.tensor(x).to(dt)
        ref = skm.silhouette_samples(xh.float().numpy(), y)
        got = silhouette_samples(xh, torch.tensor(y))
        assert got.dtype == torch.float32
        np.testing.assert_allclose(got.numpy(), ref, atol=1e-5)
        d = pairwise_distances(xh, metric='sqeuclidean')
        assert d.dtype == torch.float32 and torch.isfinite(d).all()
        ref = skm.pairwise_distances(xh.float().numpy(), metric='sqeuclidean')
        np.testing.assert_allclose(d.numpy(), ref, atol=1e-6 * ref.max())

def test_pairwise_distances_and_silhouette_refuse_bad_input():
    x = torch.randn(5, 3)
    for bad in (x.index_fill(0, torch.tensor([2]), float('nan')), x.index_fill(0, torch.tensor([1]), float('inf'))):
        for m in METRICS:
            with pytest.raises(ValueError, match='NaN or Inf'): pairwise_distances(bad, metric=m)
            with pytest.raises(ValueError, match='NaN or Inf'): pairwise_distances(x, bad, metric=m)
    with pytest.raises(ValueError, match='0 features'): pairwise_distances(torch.zeros(3, 0))
    with pytest.raises(ValueError, match='0 features'): silhouette_samples(torch.zeros(4, 0), torch.tensor([0, 0, 1, 1]))
    with pytest.raises(ValueError, match='same number of features'): pairwise_distances(x, torch.randn(2, 4))
    y = torch.tensor([0, 0, 1, 1, 2])
    for bs in (0, -3, 2.5, True, '4'):
        with pytest.raises((ValueError, TypeError), match='block_size'): silhouette_samples(x, y, block_size=bs)
    np.testing.assert_allclose(silhouette_samples(x, y, block_size=np.int64(2)).numpy(),
                               skm.silhouette_samples(x.numpy(), y.numpy()), atol=1e-6)

@settings(max_examples=40, deadline=None)
@given(labelled_points(min_n=3), st.sampled_from(["cosine", "sqeuclidean"]), st.sampled_from(["softmax", "logmeanexp", "hard"]),
       st.sampled_from(DENOMINATORS), st.booleans(), st.sampled_from([1e-3, 0.3, 1e3]), st.booleans())
def test_fused_equals_autograd_graph(data, metric, soft_min, den, normalize, tau, zero_row):
    "The fused kernel against the autograd graph it replaces (fused=False): values and the gradient of a random mix of a, b and s."
    x, y = data
    if zero_row and soft_min != 'hard': x[0] = 0                         # F.normalize's eps branch (with 'hard' a tie: 0 is as far from every class)
    t = torch.tensor(x, requires_grad=True)
    kw = dict(metric=metric, soft_min=soft_min, denominator=den, normalize=normalize, temperature=tau, method='classsum')
    f, r = soft_silhouette_samples(t, torch.tensor(y), **kw), soft_silhouette_samples(t, torch.tensor(y), fused=False, **kw)
    assert torch.equal(f.valid, r.valid)
    scale = 1 + float(np.abs(x).max()) ** 2
    for u, v in zip(f[:3], r[:3]): np.testing.assert_allclose(u.detach().numpy(), v.detach().numpy(), atol=1e-9 * scale)
    w = torch.randn(3, len(x), dtype=torch.float64, generator=torch.Generator().manual_seed(len(x)))
    gf, gr = (torch.autograd.grad(sum((w[i] * o[i]).sum() for i in range(3)), t)[0] for o in (f, r))
    np.testing.assert_allclose(gf.numpy(), gr.numpy(), atol=1e-7 * scale / min(tau, 1), rtol=1e-7)

@pytest.mark.parametrize('metric,normalize', [('cosine', True), ('sqeuclidean', True), ('sqeuclidean', False)])
@pytest.mark.parametrize('soft_min', ['softmax', 'logmeanexp', 'hard'])
@pytest.mark.parametrize('den', DENOMINATORS)
def test_fused_gradcheck(metric, normalize, soft_min, den):
    "gradcheck of the fused Function itself (all three differentiable outputs), with an absent class and a singleton."
    from softsil_nb.silhouette import _FusedClassSum, class_codes, _class_sums
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 3, dtype=torch.float64, generator=g, requires_grad=True)
    codes, n = class_codes(torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 5]), 7)   # 4 and 6 absent, 5 a singleton
    counts = _class_sums(x.new_ones(12), codes, n)
    f = lambda t: _FusedClassSum.apply(t, codes, counts, metric, normalize, 0.5, soft_min, den, 1e-8)[:3]
    assert torch.autograd.gradcheck(f, (x,))
    with pytest.raises(RuntimeError): torch.autograd.grad(f(x)[2].sum(), x, create_graph=True)[0].sum().backward()

def test_fused_covers_the_default_and_falls_back():
    "The default loss call takes the fused kernel; 'logsumexp' and the pairwise form take the autograd graph."
    x, y = torch.randn(16, 4, requires_grad=True), torch.randint(0, 3, (16,))
    assert type(soft_silhouette_samples(x, y).silhouette.grad_fn).__name__ == '_FusedClassSumBackward'
    for kw in (dict(soft_min='logsumexp'), dict(method='pairwise'), dict(fused=False)):
        assert 'Fused' not in type(soft_silhouette_samples(x, y, **kw).silhouette.grad_fn).__name__


def test_fused_backward_inside_autocast():
    "The fused kernel's backward, run inside a CPU bf16 autocast region (as a training step under autocast does), stays float32 and equals the reference path."
    from softsil_nb.losses import soft_silhouette_loss
    torch.manual_seed(0)
    x, y = torch.randn(64, 16), torch.arange(64) % 5
    grads = []
    for fused in (True, False):
        z = x.clone().requires_grad_()
        with torch.autocast('cpu', dtype=torch.bfloat16):
            r = soft_silhouette_samples(z, y, fused=fused)
            loss = (1 - r.silhouette).mean()
            loss.backward()
        grads.append(z.grad)
    assert grads[0].dtype == torch.float32
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=2e-5)        # float32 rounding of two orders of summation
