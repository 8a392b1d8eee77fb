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
    "A block never holds more than block_size x N distances: check by counting the largest tensor built."
    x, y = torch.randn(500, 4, dtype=torch.float64), torch.randint(0, 5, (500,))
    seen = []
    import softsil_nb.silhouette as S
    orig = S.pairwise_distances
    def spy(a, b=None, metric='euclidean'):
        d = orig(a, b, metric); seen.append(d.numel()); return d
    S.pairwise_distances = spy
    try: v = silhouette_samples(x, y, block_size=50)
    finally: S.pairwise_distances = orig
    assert max(seen) == 50 * 500 and len(seen) == 10
    np.testing.assert_allclose(v.numpy(), skm.silhouette_samples(x.numpy(), y.numpy()), atol=1e-9)

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
