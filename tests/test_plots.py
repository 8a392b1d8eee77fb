"Tests of softsil_nb.plots: what each figure draws, checked against independent computations (numpy, scikit-learn)."
import time
import matplotlib
matplotlib.use('Agg')                       # headless, in this test process only (the library never picks a backend)
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from sklearn import metrics as skm
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from softsil_nb.plots import (class_colors, silhouette_plot, temperature_curves, temperature_plot, project_2d,
                              embedding_plot, comparison_plot, PROJECTIONS)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close('all')


@pytest.fixture(scope='module')
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300].astype(np.float64), y[:300]


def limits_oracle(X, y, metric='cosine', normalize=True):
    "Mean over samples whose class has >= 2 members of the min and of the mean over the other classes of the class-mean distance."
    Z = X / np.linalg.norm(X, axis=1, keepdims=True) if normalize else X
    D = skm.pairwise_distances(Z, metric=metric)
    cls = np.unique(y)
    M = np.stack([D[:, y == c].mean(1) for c in cls], 1)
    other = y[:, None] != cls[None]
    ok = np.array([(y == v).sum() >= 2 for v in y])
    return np.where(other, M, np.inf).min(1)[ok].mean(), ((M * other).sum(1) / other.sum(1))[ok].mean()


def is_png(path):
    with open(path, 'rb') as f: return f.read(8) == b'\x89PNG\r\n\x1a\n'


# ---------------------------------------------------------------------------------------------- colours
def test_class_colors_distinct():
    for n in (0, 1, 10, 11, 20, 21, 100):
        cols = class_colors(n)
        assert len(cols) == n and len(set(cols)) == n
    with pytest.raises(ValueError, match='n must be'): class_colors(2.5)


# ---------------------------------------------------------------------------------------------- silhouette_plot
def band_rows_and_values(coll):
    "The rows a band spans and the non-zero x coordinates of its outline."
    xy = coll.get_paths()[0].vertices
    return xy[:, 1].max() - xy[:, 1].min(), set(xy[xy[:, 0] != 0, 0].tolist())


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(-3, 4), st.floats(-1, 1, allow_nan=False)), min_size=1, max_size=60))
def test_silhouette_plot_draws_each_class_band(pairs):
    labels = np.array([p[0] for p in pairs]); values = np.array([p[1] for p in pairs])
    ax = silhouette_plot(torch.tensor(values), labels, ax=Figure().subplots())   # no pyplot figure: fast, nothing to close
    classes = np.unique(labels)
    assert len(ax.collections) == len(classes)
    for c, coll in zip(classes, ax.collections):
        rows, xs = band_rows_and_values(coll)
        assert rows == (labels == c).sum()
        assert xs == set(values[labels == c].tolist()) - {0.0}
    assert len(ax.lines) == 1
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [values.mean()] * 2, rtol=0, atol=1e-12)
    assert [t.get_text() for t in ax.get_yticklabels()] == [str(c) for c in classes]


def test_silhouette_plot_digits_matches_sklearn(digits):
    X, y = digits
    from softsil_nb.silhouette import silhouette_samples
    ax = silhouette_plot(silhouette_samples(torch.tensor(X), torch.tensor(y)), y, class_names={i: f'd{i}' for i in range(10)})
    score = skm.silhouette_score(X, y)
    assert ax.lines[0].get_xdata()[0] == pytest.approx(score, abs=1e-9)
    assert ax.get_title() == f'silhouette plot (mean s = {score:.3f})'
    assert [t.get_text() for t in ax.get_yticklabels()] == [f'd{i}' for i in range(10)]
    assert ax.get_xlim()[0] <= skm.silhouette_samples(X, y).min()


def test_silhouette_plot_uses_given_axes_and_title():
    fig, (a1, a2) = plt.subplots(1, 2)
    ax = silhouette_plot([0.2, 0.4, -0.1], [1, 1, 0], ax=a2, title='mine', class_names=['zero', 'one'])
    assert ax is a2 and ax.get_title() == 'mine' and len(a1.collections) == 0
    assert [t.get_text() for t in ax.get_yticklabels()] == ['zero', 'one']


@pytest.mark.parametrize('values, labels, kw, exc, msg', [
    (np.zeros(4), np.zeros(3), {}, ValueError, 'labels must have length 4'),
    (np.zeros((4, 2)), np.zeros(4), {}, ValueError, 'values must be 1-D'),
    (np.array([0.1, np.nan]), np.zeros(2), {}, ValueError, 'values contains NaN'),
    (np.array([]), np.array([]), {}, ValueError, 'values must not be empty'),
    (np.array(['a', 'b']), np.zeros(2), {}, TypeError, 'values must be numeric'),
    (np.zeros(2), np.array([0, 5]), dict(class_names=['a', 'b']), ValueError, 'class_names'),
    (np.zeros(2), np.array([0, 5]), dict(class_names={0: 'a'}), ValueError, 'class_names'),
    (np.zeros(2), np.zeros(2), dict(ax='here'), TypeError, 'ax must be'),
])
def test_silhouette_plot_bad_input(values, labels, kw, exc, msg):
    with pytest.raises(exc, match=msg): silhouette_plot(values, labels, **kw)


# ---------------------------------------------------------------------------------------------- temperature_plot
def test_temperature_plot_limits_and_curves(digits):
    X, y = digits
    n = torch.get_num_threads(); torch.set_num_threads(1)       # time the work, not thread contention on a busy machine
    try:
        t0 = time.perf_counter(); ax = temperature_plot(torch.tensor(X), torch.tensor(y)); secs = time.perf_counter() - t0
    finally: torch.set_num_threads(n)
    assert secs < 2, secs
    assert isinstance(ax, Axes) and ax.get_xscale() == 'log' and len(ax.lines) == 4
    hard, mean = limits_oracle(X, y)
    assert ax.lines[2].get_ydata()[0] == pytest.approx(hard, abs=1e-9)
    assert ax.lines[3].get_ydata()[0] == pytest.approx(mean, abs=1e-9)
    taus = ax.lines[0].get_xdata()
    np.testing.assert_allclose(taus, np.logspace(-3, 1, 25))
    for line in ax.lines[:2]:
        b = line.get_ydata()
        assert (b >= hard - 1e-9).all() and (b <= mean + 1e-9).all() and (np.diff(b) >= -1e-9).all()
    assert ax.lines[0].get_ydata()[0] == pytest.approx(hard, abs=1e-4)
    assert 0 <= ax.lines[1].get_ydata()[0] - hard <= 1e-3 * np.log(9)
    twins = [a for a in ax.get_shared_x_axes().get_siblings(ax) if a is not ax]
    assert len(twins) == 1 and len(twins[0].lines) == 1
    loss = twins[0].lines[0].get_ydata()
    assert ((loss >= 0) & (loss <= 2)).all() and (np.diff(loss) <= 1e-9).all()      # b rises with tau, so s rises and the loss falls


def test_temperature_curves_small_tau_is_the_classical_loss(digits):
    X, y = digits
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    for metric in ('cosine', 'sqeuclidean', 'euclidean'):
        c = temperature_curves(X, y, [1e-7], metric=metric)
        assert c['loss'][0] == pytest.approx(1 - skm.silhouette_samples(Xn, y, metric=metric).mean(), abs=1e-6)


@pytest.mark.parametrize('metric, normalize', [('cosine', True), ('sqeuclidean', True), ('sqeuclidean', False), ('euclidean', False)])
def test_temperature_curves_limits(digits, metric, normalize):
    X, y = digits
    y = y.copy(); y[0] = 99                                      # a singleton class: not a valid sample
    c = temperature_curves(torch.tensor(X, dtype=torch.float32), y, [0.5], metric=metric, normalize=normalize)
    hard, mean = limits_oracle(X, y, metric, normalize)
    assert c['hard'] == pytest.approx(hard, rel=1e-5) and c['mean'] == pytest.approx(mean, rel=1e-5)


@pytest.mark.parametrize('kw, msg', [(dict(temperatures=[0.1, -1.0]), 'temperatures'), (dict(temperatures=[]), 'temperatures'),
                                     (dict(metric='manhattan'), 'metric')])
def test_temperature_plot_bad_options(digits, kw, msg):
    X, y = digits
    with pytest.raises(ValueError, match=msg): temperature_plot(X, y, **kw)


def test_temperature_plot_bad_data(digits):
    X, y = digits
    with pytest.raises(ValueError, match='labels must have shape'): temperature_plot(X, y[:10])
    with pytest.raises(ValueError, match='no valid sample'): temperature_plot(X, np.arange(300))
    with pytest.raises(ValueError, match='embeddings contains NaN'): temperature_plot(np.full((4, 2), np.nan), [0, 0, 1, 1])
    with pytest.raises(ValueError, match='embeddings must be 2-D'): temperature_plot(np.zeros(4), [0, 0, 1, 1])


# ---------------------------------------------------------------------------------------------- embedding_plot
def test_project_2d_is_pca(digits):
    X, _ = digits
    p = project_2d(torch.tensor(X, dtype=torch.float32))
    ref = PCA(2, svd_solver='full').fit_transform(X)
    for k in range(2):
        sign = np.sign(p[:, k] @ ref[:, k])
        np.testing.assert_allclose(p[:, k], sign * ref[:, k], atol=1e-3)
    assert (p[np.abs(p).argmax(0), [0, 1]] > 0).all()
    np.testing.assert_array_equal(p, project_2d(X.astype(np.float32)))


def test_embedding_plot_scatters_each_class(digits):
    X, y = digits
    ax = embedding_plot(X, y, class_names=[f'c{i}' for i in range(10)], title='t')
    p = project_2d(X)
    assert len(ax.collections) == 10 and ax.get_title() == 't'
    for k, coll in enumerate(ax.collections): np.testing.assert_allclose(coll.get_offsets(), p[y == k])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f'c{i}' for i in range(10)]


def test_embedding_plot_tsne_and_many_classes():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5)); y = np.arange(60) % 30
    ax = embedding_plot(X, y, method='tsne', tsne_kw=dict(max_iter=250))
    assert ax.get_title() == 'TSNE' and len(ax.collections) == 30 and ax.get_legend() is None
    assert sum(len(c.get_offsets()) for c in ax.collections) == 60
    assert set(PROJECTIONS) == {'pca', 'tsne'}


@pytest.mark.parametrize('features, labels, kw, msg', [
    (np.zeros((5, 3)), np.zeros(4), {}, 'labels must have length 5'),
    (np.zeros(5), np.zeros(5), {}, 'features must be 2-D'),
    (np.zeros((5, 1)), np.zeros(5), {}, 'features must have at least 3 rows and 2 columns'),
    (np.zeros((5, 3)), np.zeros(5), dict(method='umap'), 'method'),
    (np.full((5, 3), np.inf), np.zeros(5), {}, 'features contains NaN'),
])
def test_embedding_plot_bad_input(features, labels, kw, msg):
    with pytest.raises(ValueError, match=msg): embedding_plot(features, labels, **kw)


# ---------------------------------------------------------------------------------------------- comparison_plot
def test_comparison_plot_panels_and_scores(digits):
    X, y = digits
    R = np.random.default_rng(1).normal(size=(64, 8))
    fig = comparison_plot({'pixels': torch.tensor(X), 'proj': X @ R}, y, suptitle='s')
    assert isinstance(fig, Figure) and len(fig.axes) == 2 and len(fig.legends) == 1
    assert fig.axes[0].get_title() == f'pixels\nsilhouette (cosine) = {skm.silhouette_score(X, y, metric="cosine"):.3f}'
    assert fig.axes[1].get_title() == f'proj\nsilhouette (cosine) = {skm.silhouette_score(X @ R, y, metric="cosine"):.3f}'
    assert [len(a.collections) for a in fig.axes] == [10, 10]
    assert fig._suptitle.get_text() == 's'


def test_comparison_plot_layout_and_per_set_labels(digits):
    X, y = digits
    fig = comparison_plot({'a': X, 'b': X[:100], 'c': X}, {'a': y, 'b': y[:100], 'c': y}, ncols=2, metric='euclidean')
    assert len(fig.axes) == 3
    rows = sorted({round(a.get_position().y0, 3) for a in fig.axes})
    assert len(rows) == 2                                                        # 2 + 1 panels
    assert fig.axes[1].get_title() == f'b\nsilhouette (euclidean) = {skm.silhouette_score(X[:100], y[:100]):.3f}'
    assert comparison_plot({'one class': X[:5]}, np.zeros(5, int)).axes[0].get_title() == 'one class'  # no score possible


@pytest.mark.parametrize('sets, labels, kw, exc, msg', [
    ({}, np.zeros(3), {}, ValueError, 'feature_sets must hold'),
    ([np.zeros((3, 2))], np.zeros(3), {}, TypeError, 'feature_sets must be a mapping'),
    ({'a': np.zeros((3, 2)), 'b': np.zeros((4, 2))}, np.zeros(3), {}, ValueError, "labels of 'b' must have length 4"),
    ({'a': np.zeros((3, 2))}, {'b': np.zeros(3)}, {}, ValueError, 'labels has no entry'),
    ({'a': np.zeros((3, 2))}, np.zeros(3), dict(metric='l1'), ValueError, 'metric'),
    ({'a': np.zeros((3, 2))}, np.zeros(3), dict(ncols=0), ValueError, 'ncols'),
    ({'a': np.zeros(3)}, np.zeros(3), {}, ValueError, r"feature_sets\['a'\] must be 2-D"),
])
def test_comparison_plot_bad_input(sets, labels, kw, exc, msg):
    with pytest.raises(exc, match=msg): comparison_plot(sets, labels, **kw)


# ---------------------------------------------------------------------------------------------- files
def test_every_plot_saves_to_png(digits, tmp_path):
    X, y = digits
    figs = {'silhouette': silhouette_plot(np.linspace(-1, 1, 300), y).figure,
            'temperature': temperature_plot(X, y, temperatures=[0.01, 0.1, 1]).figure,
            'embedding': embedding_plot(X, y).figure,
            'comparison': comparison_plot({'a': X, 'b': X}, y)}
    for name, fig in figs.items():
        path = tmp_path/f'{name}.png'
        fig.savefig(path, dpi=50)
        assert is_png(path)
        img = plt.imread(path)
        assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50
