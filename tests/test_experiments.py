"Results file, statistics and tables of softsil_nb.experiments, against independent computations."
import json, math, warnings
from dataclasses import asdict
import numpy as np
import pytest
from scipy import stats
from softsil_nb.experiments import (RunConfig, ResultsFile, t_interval, outcome, results_frame, paired_differences,
                                    accuracy_table, verdicts, suite, run_suite, LOSS_VERSION)

def test_key_depends_on_every_field_and_loss_version(monkeypatch):
    base = RunConfig()
    for k, v in dict(dataset='mnist', method='ce+sil', seed=3, k_per_class=None, epochs=1, stage2_epochs=1, batch_size=7,
                     lr=1.0, stage2_lr=1.0, arch='resnet18', sampler='pk').items():
        assert RunConfig(**{k: v}).key() != base.key(), k
    assert base.with_overrides(sil=2.0).key() != base.key()
    import softsil_nb.experiments as E
    before = base.key()
    monkeypatch.setattr(E, 'LOSS_VERSION', LOSS_VERSION + 1)
    assert RunConfig().key() != before

def test_results_file_appends_whole_lines_and_reports_corruption(tmp_path):
    rf = ResultsFile(tmp_path/'sub'/'r.jsonl')
    for i in range(3): rf.append(dict(key=str(i), v=i))
    lines = rf.path.read_text().splitlines()
    assert [json.loads(l)['key'] for l in lines] == ['0', '1', '2']
    with open(rf.path, 'a') as f: f.write('{"key": "3", "v"')
    with pytest.warns(UserWarning, match='line 4 is corrupted'): assert len(rf.read()) == 3
    with pytest.raises(ValueError, match='line 4'): rf.read(strict=True)

def test_t_interval_matches_scipy():
    x = np.random.default_rng(0).normal(1, 2, size=7)
    m, lo, hi = t_interval(x)
    ref = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert abs(lo - ref[0]) < 1e-12 and abs(hi - ref[1]) < 1e-12 and abs(m - x.mean()) < 1e-12
    assert t_interval([0.3])[1] == -math.inf
    assert [outcome(1, 2), outcome(-2, -1), outcome(-1, 1)] == ['win', 'loss', 'tie']

def _records(effects, seeds=5, datasets=('a', 'b', 'c'), noise=0.001):
    rng = np.random.default_rng(1)
    out = []
    for d in datasets:
        for s in range(seeds):
            base = rng.uniform(0.3, 0.9)
            for m, e in effects.items():
                c = RunConfig(dataset=d, method=m, seed=s)
                out.append(dict(key=c.key(), config=asdict(c), split='test', timing=dict(seconds_per_epoch=1.),
                                metrics=dict(accuracy=base + e + rng.normal(0, noise), silhouette_cosine=0.1)))
    return out

def test_paired_differences_against_a_direct_computation():
    recs = _records({'ce': 0., 'ce+sil': 0.01})
    df = results_frame(recs)
    p = paired_differences(df, 'ce+sil', 'ce')
    acc = {(r['config']['dataset'], r['config']['seed'], r['config']['method']): r['metrics']['accuracy'] for r in recs}
    for d in 'abc':
        diffs = [acc[(d, s, 'ce+sil')] - acc[(d, s, 'ce')] for s in range(5)]
        assert abs(p[d]['mean'] - np.mean(diffs)) < 1e-12 and p[d]['outcome'] == 'win'
    per_seed = [np.mean([acc[(d, s, 'ce+sil')] - acc[(d, s, 'ce')] for d in 'abc']) for s in range(5)]
    lo, hi = stats.t.interval(0.95, 4, loc=np.mean(per_seed), scale=stats.sem(per_seed))
    assert abs(p['average']['low'] - lo) < 1e-12 and abs(p['average']['high'] - hi) < 1e-12
    assert (p['average']['wins'], p['average']['ties'], p['average']['losses']) == (3, 0, 0)

def test_verdicts():
    effects = {'ce': 0., 'ce+sil': 0.02, 'ce+triplet': 0.0, 'ce+proxyanchor': 0.03, 'supcon2': 0.01, 'supcon+sil': 0.01, 'ce+supcon+sil': 0.05}
    recs = _records(effects, datasets=tuple('abcdefg'))
    v = verdicts(results_frame(recs), overhead={'ce': 1., 'ce+sil': 1.1, 'supcon2': 2.})
    assert v['(i) CE + Sil beats CE and the metric-learning baselines'][0] == 'contradicted'   # proxyanchor is better
    assert v["(i) against the paper's own baselines (CE, SupCon2 = supcon2, Proxy-NCA, Center Loss)"][0] == 'not tested (runs missing)'
    assert v['(ii) SupCon + Sil beats SupCon alone'][0] == 'not shown'
    assert v['(iii) CE + SupCon + Sil is the best'][0] == 'supported'
    assert v['(iv) lower computational overhead'][0] == 'supported'
    v = verdicts(results_frame(_records({**effects, 'ce+proxynca': 0.0, 'ce+center': 0.01}, datasets=tuple('abcdefg'))))
    assert v["(i) against the paper's own baselines (CE, SupCon2 = supcon2, Proxy-NCA, Center Loss)"][0] == 'supported'
    three = verdicts(results_frame(recs[:len(recs) * 3 // 7]))                   # 3 datasets: no Wilcoxon p below 0.25, so no win or loss
    assert three['(iii) CE + SupCon + Sil is the best'][0] == 'not shown' and three['(i) CE + Sil beats CE and the metric-learning baselines'][0] == 'not shown'

def test_dataset_tests_and_bootstrap_against_enumeration_and_scipy():
    import itertools
    from softsil_nb.experiments import dataset_tests, hierarchical_bootstrap
    rng = np.random.default_rng(5)
    for n in (5, 7):
        x = rng.normal(0.01, 0.02, size=n)
        r = stats.rankdata(np.abs(x))
        pats = np.array(list(itertools.product([0, 1], repeat=n)), bool)
        w, k = (pats * r).sum(1), pats.sum(1)
        w0, k0 = r[x > 0].sum(), (x > 0).sum()
        t = dataset_tests(x)
        assert abs(t['wilcoxon_p'] - min(1, 2 * min((w <= w0).mean(), (w >= w0).mean()))) < 1e-12
        assert abs(t['sign_p'] - min(1, 2 * min((k <= k0).mean(), (k >= k0).mean()))) < 1e-12
    assert abs(dataset_tests(np.full(7, 0.01))['wilcoxon_p'] - 0.015625) < 1e-12
    x = rng.normal(0.01, 0.02, size=(1, 6))[0]                   # one dataset: the bootstrap of its seeds, as scipy's percentile bootstrap
    ref = stats.bootstrap((x,), np.mean, n_resamples=20_000, method='percentile', random_state=0).confidence_interval
    _, lo, hi = hierarchical_bootstrap({'a': x}, n_boot=20_000)
    assert abs(lo - ref.low) < 1.5e-3 and abs(hi - ref.high) < 1.5e-3
    m, lo, hi = hierarchical_bootstrap({'a': [1., 1.], 'b': [3., 3., 3.]})
    assert m == 2. and lo == 1. and hi == 3.                      # datasets resampled: all-a and all-b replicates occur

def test_accuracy_table_values():
    df = results_frame(_records({'ce': 0.}, seeds=2, datasets=('a',)))
    v = df.accuracy.to_numpy() * 100
    assert f'| ce | {v.mean():.2f} ± {v.std(ddof=1):.2f} | {v.mean():.2f} |' in accuracy_table(df)

def test_suites_are_paired_and_complete():
    paper = suite('paper')
    assert len(paper) == 280 and len({c.key() for c in paper}) == 280
    for d in {c.dataset for c in paper}:
        budgets = {(c.epochs, c.batch_size, c.lr, c.stage2_epochs, c.k_per_class, c.arch) for c in paper if c.dataset == d}
        assert len(budgets) == 1, d                       # the same budget for every method of a dataset
    with pytest.raises(ValueError, match='unknown suite'): suite('nope')

def test_run_suite_resumes(tmp_path):
    cfgs = [RunConfig('uci_digits', m, 0, k_per_class=5, epochs=1, batch_size=16) for m in ('ce', 'ce+sil')]
    assert run_suite(cfgs, tmp_path/'r.jsonl', limit=1, progress=False) == 1
    assert run_suite(cfgs, tmp_path/'r.jsonl', progress=False) == 1
    recs = ResultsFile(tmp_path/'r.jsonl').read()
    assert {r['config']['method'] for r in recs} == {'ce', 'ce+sil'}
    for r in recs:
        assert 0 <= r['metrics']['accuracy'] <= 1 and r['env']['loss_version'] == LOSS_VERSION and r['timing']['n_train'] == 50

def test_committed_records_keep_their_keys():
    "Every committed record still matches a configuration of its suite (other code hashes RunConfig.key())."
    from pathlib import Path
    root = Path(__file__).parent.parent/'results'
    files = sorted(root.glob('*.jsonl'))
    assert {f.stem for f in files} >= {'paper', 'full', 'ablation', 'sweep'}
    for f in files:
        keys = {c.key(): c for c in suite(f.stem)}
        for r in ResultsFile(f).read(strict=True):
            assert r['key'] in keys, (f.name, r['config'])
            c = keys[r['key']]
            assert {k: v for k, v in asdict(c).items() if k not in ('overrides', 'version')} == \
                   {k: v for k, v in r['config'].items() if k not in ('overrides', 'version')}
            assert r['config'].get('version', 1) == c.version

def test_evaluate_confusion_and_balanced_accuracy_match_sklearn():
    from types import SimpleNamespace
    import torch
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix, accuracy_score
    from softsil_nb.experiments import evaluate
    g = torch.Generator().manual_seed(0)
    y = torch.cat([torch.zeros(40, dtype=torch.long), torch.ones(8, dtype=torch.long), torch.full((4,), 3)])   # imbalanced, class 2 absent
    logits, feats = torch.randn(len(y), 4, generator=g), torch.randn(len(y), 6, generator=g)
    logits[:30, 0] += 3
    learn = SimpleNamespace(dls=SimpleNamespace(valid=None), get_preds=lambda dl, act: ((logits, feats, feats), y))
    out = evaluate(learn)
    pred = logits.argmax(1).numpy()
    assert out['confusion'] == confusion_matrix(y.numpy(), pred, labels=range(4)).tolist()
    assert abs(out['accuracy'] - accuracy_score(y.numpy(), pred)) < 1e-6
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')                       # sklearn warns about predicted classes absent from y
        assert abs(out['balanced_accuracy'] - balanced_accuracy_score(y.numpy(), pred)) < 1e-12
    assert abs(out['balanced_accuracy'] - out['accuracy']) > 0.01
