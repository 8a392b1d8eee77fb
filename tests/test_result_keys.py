"Every committed result is found by its suite: its key is its configuration's key and one of the suite's, so run_suite never redoes it."
import json
from pathlib import Path
import pytest
from softsil_nb.experiments import RunConfig, suite, CHOSEN
from softsil_nb.learner import METHODS

RESULTS = Path(__file__).parent.parent / 'results'

def records(name):
    with open(RESULTS / f'{name}.jsonl') as f: return [json.loads(l) for l in f if l.strip()]

def config(rec):
    c = dict(rec['config']); c['overrides'] = tuple(tuple(o) for o in c['overrides'])
    return RunConfig(**c)

NAMES = sorted(p.stem for p in RESULTS.glob('*.jsonl'))

def test_every_results_file_is_a_suite():
    assert set(NAMES) >= {'paper', 'full', 'ablation', 'sweep', 'baselines', 'arch2'}, NAMES

@pytest.mark.parametrize('name', NAMES)
def test_committed_keys_match_suites(name):
    "Each record rebuilds into a valid RunConfig with its stored key, of its suite's record version, and every run is there once."
    recs = records(name)
    assert recs, f'results/{name}.jsonl is empty'
    cfgs = {c.key(): c for c in suite(name)}
    for r in recs:
        assert config(r).key() == r['key'], f'{name}: record {r["key"]} no longer hashes to its key'
        assert r['key'] in cfgs, f'{name}: record {r["key"]} ({r["config"]["dataset"]}, {r["config"]["method"]}) is not in suite {name!r}: run_suite would redo it'
        assert r['config'].get('version', 1) == cfgs[r['key']].version
    assert len({r['key'] for r in recs}) == len(cfgs) == len(recs)         # every run of each suite is committed, once

def test_one_default_weight():
    "method_learner's methods, the runner and the callbacks read the same silhouette weight."
    from softsil_nb.callbacks import SIL_WEIGHT, SoftSilhouetteCallback
    assert CHOSEN == dict(sil=SIL_WEIGHT) and SIL_WEIGHT == 3.0 and SoftSilhouetteCallback().weight == SIL_WEIGHT
    assert {m.sil for m in METHODS.values() if m.sil > 0} == {SIL_WEIGHT}
