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

# ---------------------------------------------------------------- paper-original: the paper's datasets on EfficientNet-B0
def test_paper_original_suite_and_dry_run_without_data(tmp_path, monkeypatch):
    from softsil_nb.experiments import dry_run, PAPER_ORIGINAL_DATASETS, PAPER_ORIGINAL_METHODS
    from softsil_nb.learner import METHODS
    monkeypatch.setenv('FASTAI_HOME', str(tmp_path/'fastai')); monkeypatch.setenv('SOFTSIL_DATA', str(tmp_path/'data'))
    po = suite('paper-original')
    assert len(po) == len({c.key() for c in po}) == 7 * 8 * 3
    assert {(c.dataset, c.method) for c in po} == {(d, m) for d in PAPER_ORIGINAL_DATASETS for m in PAPER_ORIGINAL_METHODS}
    assert set(PAPER_ORIGINAL_DATASETS) == {'cifar10', 'cifar100', 'stanford_cars', 'caltech101', 'caltech256', 'fgvc_aircraft', 'flowers102'}
    assert {c.arch for c in po} == {'efficientnet_b0'} and {dict(c.overrides)['augment'] for c in po} == {'autoaugment'}
    known = [m for m in PAPER_ORIGINAL_METHODS if m in METHODS]
    assert set(PAPER_ORIGINAL_METHODS) - set(known) <= {'ce+proxynca', 'ce+center'} # issue 13's, until merged
    res = tmp_path/'paper-original.jsonl'
    ResultsFile(res).append(dict(key=po[0].key(), config=asdict(po[0]), split='test', metrics=dict(accuracy=0.5)))
    text = dry_run(po, res)
    rows = [l for l in text.splitlines() if l.startswith('| ') and l[2].isdigit()]
    assert len(rows) == 168 and rows[0].endswith('| done |')
    status = lambda c: 'method not defined in this build' if c.method not in METHODS else 'data missing'
    assert [r.rsplit('|', 2)[1].strip() for r in rows[1:]] == [status(c) for c in po[1:]]
    assert text.startswith('168 runs, results in paper-original.jsonl: 1 done,')
    for d in PAPER_ORIGINAL_DATASETS: assert f'- `{d}`: ' in text
    assert 'cars_test_annos_withlabels.mat' in text
    assert len([l for l in dry_run(po, res, shard=(2, 3)).splitlines() if l.startswith('| ') and l[2].isdigit()]) == 56
    assert not (tmp_path/'data').exists() and not (tmp_path/'fastai').exists() # nothing fetched, nothing created

def test_paper_original_run_trains_on_a_fixture(tmp_path, monkeypatch):
    "One paper-original configuration (two views, AutoAugment, EfficientNet-B0) through run_one, on a tiny Caltech-101 in its own format."
    import dataclasses, socket
    import softsil_nb.experiments as E
    def refuse(*a): raise AssertionError(f'network access attempted: {a}')
    monkeypatch.setattr(socket.socket, 'connect', refuse) # nothing downloads
    from softsil_nb.data import make_torchvision_fixture, fetch, load_dataset
    make_torchvision_fixture('caltech101', tmp_path, n_train=6, n_test=2, size=(32, 32)); fetch('caltech101', tmp_path)
    monkeypatch.setitem(E._DATA_CACHE, 'caltech101', load_dataset('caltech101', size=32, root=tmp_path))
    cfg = next(c for c in suite('paper-original') if c.dataset == 'caltech101' and c.method == 'ce+supcon+sil')
    cfg = dataclasses.replace(cfg, epochs=1, batch_size=8)
    dls, learn = E.build_learner(cfg, device='cpu')
    assert type(dls.train.after_batch.fs[0]).__name__ == 'PerSampleAutoAugment' and dls.train.after_batch.fs[0].n_views == 2
    assert learn.model.feat_dim == 1280 and type(learn.model.encoder.neck).__name__ == 'Identity'
    rec = E.run_one(cfg, device='cpu')
    assert rec['config']['arch'] == 'efficientnet_b0' and rec['metrics']['n_eval'] == 6 and 0 <= rec['metrics']['accuracy'] <= 1

# ---- issue 12 section 1: results writes that never lose a finished run -------------------------------------------
import errno, os, subprocess, sys, textwrap, time
from pathlib import Path

def _rec(k, **kw): return dict(key=k, config=asdict(RunConfig(seed=int(k) if k.isdigit() else 0)), split='test', metrics=dict(accuracy=0.5), **kw)

def test_append_completes_a_short_write(tmp_path, monkeypatch):
    rf = ResultsFile(tmp_path/'r.jsonl'); rf.append(_rec('0'))
    real = os.write
    def half(fd, data): return real(fd, bytes(data)[:max(1, len(data) // 2)])     # a short write: half of what was asked
    monkeypatch.setattr(os, 'write', half)
    rf.append(_rec('1', pad='x' * 1000)); rf.append(_rec('2'))
    monkeypatch.undo()
    with warnings.catch_warnings(): warnings.simplefilter('error'); recs = rf.read()
    assert [r['key'] for r in recs] == ['0', '1', '2'] and recs[1]['pad'] == 'x' * 1000

def test_append_on_a_full_disk_raises_and_leaves_no_partial_line(tmp_path, monkeypatch):
    rf = ResultsFile(tmp_path/'r.jsonl'); rf.append(_rec('0')); before = rf.path.read_bytes()
    real, calls = os.write, []
    def full(fd, data):                                   # the disk fills up after part of the record is written
        calls.append(len(data))
        if len(calls) > 1: raise OSError(errno.ENOSPC, 'No space left on device')
        return real(fd, bytes(data)[:len(data) // 2])
    monkeypatch.setattr(os, 'write', full)
    with pytest.raises(OSError, match='No space left'): rf.append(_rec('1', pad='x' * 1000))
    monkeypatch.undo()
    assert rf.path.read_bytes() == before                 # nothing half-written is left behind
    rf.append(_rec('2'))
    with warnings.catch_warnings(): warnings.simplefilter('error'); assert [r['key'] for r in rf.read()] == ['0', '2']

def test_resume_after_a_truncated_last_line_keeps_the_new_record(tmp_path):
    rf = ResultsFile(tmp_path/'r.jsonl'); rf.append(_rec('0'))
    with open(rf.path, 'ab') as f: f.write(b'{"key": "1", "config": {"da')          # killed mid-write
    rf.append(_rec('1'))                                                            # the redone run
    with pytest.warns(UserWarning, match='line 2 is corrupted'): recs = rf.read()
    assert [r['key'] for r in recs] == ['0', '1'] and rf.path.read_bytes().endswith(b'\n')

@pytest.mark.parametrize('bad', [b'{}', b'[1, 2]', b'"text"', b'{"key": 3}', b'{"key": "k", "config": 5}', b'\xff\xfe{"key": "z"}'])
def test_wrong_shape_and_non_utf8_lines_are_skipped_with_a_warning(tmp_path, bad):
    rf = ResultsFile(tmp_path/'r.jsonl'); rf.append(_rec('0'))
    with open(rf.path, 'ab') as f: f.write(bad + b'\n')
    rf.append(_rec('1'))
    with pytest.warns(UserWarning, match='line 2 is corrupted'): assert [r['key'] for r in rf.read()] == ['0', '1']
    with pytest.warns(UserWarning): assert rf.done() == {'0', '1'}
    with pytest.raises(ValueError, match='line 2'): rf.read(strict=True)

def _fake_runner(cfg, split='test', device=None, bar=False):
    return dict(key=cfg.key(), config=asdict(cfg), split=split, metrics=dict(accuracy=0.5 + cfg.seed / 100), timing=dict(fit_seconds=0.))

def test_unwritable_results_path_fails_before_training(tmp_path):
    (tmp_path/'afile').write_text('x')
    ran = []
    def runner(cfg, **kw): ran.append(cfg); return _fake_runner(cfg, **kw)
    with pytest.raises(OSError, match='results file'):
        run_suite([RunConfig(seed=0)], tmp_path/'afile'/'r.jsonl', progress=False, runner=runner)
    assert ran == []
    if os.geteuid() != 0:                                   # root writes anywhere: the read-only folder case needs a user
        ro = tmp_path/'ro'; ro.mkdir(); ro.chmod(0o500)
        with pytest.raises(OSError, match='results file'): run_suite([RunConfig(seed=0)], ro/'r.jsonl', progress=False, runner=runner)
        assert ran == []

def test_run_suite_limit_and_one_line_per_run(tmp_path, capsys):
    cfgs = [RunConfig('uci_digits', 'ce', s) for s in range(3)]
    assert run_suite(cfgs, tmp_path/'r.jsonl', limit=2, runner=_fake_runner) == 2
    out = capsys.readouterr().out.splitlines()
    assert out[0] == '0 of 3 runs already in r.jsonl; 3 to run'
    assert out[1].startswith('[1/3] uci_digits ce seed 0: accuracy 50.00%') and out[2].startswith('[2/3] uci_digits ce seed 1: accuracy 51.00%')
    assert len(out) == 3 and not any('\r' in l or '█' in l for l in out)
    assert run_suite(cfgs, tmp_path/'r.jsonl', progress=False, runner=_fake_runner) == 1

def test_two_plain_processes_split_a_suite_by_claims(tmp_path):
    "Two processes on one results file, no --shard: each run is trained once, and both processes train some."
    script = textwrap.dedent(f'''
        import os, sys, time
        from dataclasses import asdict
        from softsil_nb.experiments import RunConfig, run_suite
        def runner(cfg, split='test', device=None, bar=False):
            time.sleep(0.3)
            return dict(key=cfg.key(), config=asdict(cfg), split=split, metrics=dict(accuracy=0.5), pid=os.getpid())
        n = run_suite([RunConfig('uci_digits', 'ce', s) for s in range(8)], sys.argv[1], progress=False, runner=runner)
        print(n)
    ''')
    env = {**os.environ, 'PYTHONPATH': str(Path(__file__).resolve().parent.parent)}
    ps = [subprocess.Popen([sys.executable, '-c', script, str(tmp_path/'r.jsonl')], stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    counts = [int(p.communicate(timeout=300)[0].split()[-1]) for p in ps]
    recs = ResultsFile(tmp_path/'r.jsonl').read()
    keys = [r['key'] for r in recs]
    assert sorted(keys) == sorted(RunConfig('uci_digits', 'ce', s).key() for s in range(8))   # every run once
    assert sum(counts) == 8 and min(counts) >= 1 and len({r['pid'] for r in recs}) == 2, counts

def test_a_dead_claimant_does_not_block_a_resume(tmp_path):
    "A claim is a kernel lock: held while its process lives (others skip that run), gone when it is killed."
    cfg = RunConfig('uci_digits', 'ce', 0)
    script = textwrap.dedent('''
        import sys, time
        from softsil_nb.experiments import ResultsFile
        with ResultsFile(sys.argv[1]).claim(sys.argv[2]) as got:
            print(got, flush=True); time.sleep(600)
    ''')
    env = {**os.environ, 'PYTHONPATH': str(Path(__file__).resolve().parent.parent)}
    p = subprocess.Popen([sys.executable, '-c', script, str(tmp_path/'r.jsonl'), cfg.key()], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == 'True'
        assert run_suite([cfg], tmp_path/'r.jsonl', progress=False, runner=_fake_runner) == 0      # claimed by a live process: skipped
    finally: p.kill(); p.wait()
    assert run_suite([cfg], tmp_path/'r.jsonl', progress=False, runner=_fake_runner) == 1          # its claim died with it

@pytest.mark.parametrize('kw', [dict(epochs=0), dict(epochs=-1), dict(batch_size=0), dict(lr=float('nan')), dict(lr=0.),
                                dict(lr=float('inf')), dict(k_per_class=-1), dict(k_per_class=0), dict(seed=-1), dict(stage2_epochs=0),
                                dict(stage2_lr=-1.), dict(sampler='balanced'), dict(epochs=2.5), dict(epochs=True), dict(dataset=''),
                                dict(overrides=(('sil', float('nan')),)), dict(overrides=('sil',)), dict(sampler='pk', batch_size=3)])
def test_run_config_is_validated_at_construction(kw):
    with pytest.raises(ValueError, match=next(iter(kw)) if next(iter(kw)) != 'sampler' or 'batch_size' not in kw else 'batch_size'):
        RunConfig(**kw)
