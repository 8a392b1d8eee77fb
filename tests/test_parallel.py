"""A Learner trained on 2 gloo processes (softsil_nb.parallel) against the same Learner in one process on the global batch.

CE + SoftSilhouetteCallback + SupConCallback (its own head, started from different weights on each rank so that the broadcast
is needed), 2 augmented views, float64, a model without BatchNorm: both ranks must end with bitwise equal weights, equal to
the single-process weights to 1e-9 (float64 sums in another order), and report the same validation loss."""
import pytest
import torch
from torch import nn
from fastai.callback.core import Callback
from softsil_nb.distributed import run_ranks, world

STEPS_PER_EPOCH, EPOCHS = 4, 2

class Double(nn.Module):
    "The images in float64 (the loaders give float32)."
    def forward(self, x): return x.as_subclass(torch.Tensor).double()

def modules(head_seed:int) -> tuple[nn.Module, nn.Module]:
    "The model (no BatchNorm) and the SupCon head, in float64; the head from its own seed."
    model = nn.Sequential(Double(), nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 4)).double()
    torch.manual_seed(head_seed)                                       # a rank-dependent head: rank 0's must win
    return model, nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 5)).double()

def flat(model, head) -> torch.Tensor: return torch.cat([p.detach().reshape(-1) for p in list(model.parameters()) + list(head.parameters())])

class Steps(Callback):
    "Counts the optimizer steps (GradientAccumulation cancels the others before they step)."
    order, n = 99, 0
    def after_step(self): self.n += 1

def fit(sampler_pk:bool, head_seed:int, n_acc:int|None=None, save_to=None, keep_tail:bool=False) -> dict:
    "Build (seeded) and fit the Learner in this process, under `parallel_ctx` when a process group runs; the final weights and losses."
    from fastai.learner import Learner
    from fastai.losses import CrossEntropyLossFlat
    from fastai.data.core import DataLoaders
    from fastai.data.transforms import IntToFloatTensor
    from fastai.torch_core import set_seed
    from softsil_nb.loaders import ArrayDataset, BatchAugment, ClassBalancedSampler, DeviceDataLoader
    from softsil_nb.callbacks import SoftSilhouetteCallback, SupConCallback
    from softsil_nb.parallel import parallel_ctx
    set_seed(0)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randint(0, 256, (64, 1, 4, 4), dtype=torch.uint8, generator=g), torch.arange(64) % 4
    train = ArrayDataset(x[:48], y[:48], classes=list('abcd'), split_idx=0)
    valid = ArrayDataset(x[48:], y[48:], classes=list('abcd'), split_idx=1)
    sampler = ClassBalancedSampler(2, 6, n_batches=STEPS_PER_EPOCH) if sampler_pk else None   # p=2 x k=6: whole classes per rank
    if keep_tail: train = ArrayDataset(x[:45], y[:45], classes=list('abcd'), split_idx=0)      # a kept tail of 9: 5 and 4 samples
    tdl = DeviceDataLoader(train, bs=12, shuffle=True, drop_last=not keep_tail, sampler=sampler, seed=3, device='cpu',
                           after_batch=[IntToFloatTensor(), BatchAugment(pad=1, degrees=10, n_views=2, seed=4)])
    vdl = DeviceDataLoader(valid, bs=16, seed=3, device='cpu', after_batch=[IntToFloatTensor()])
    start = flat(*modules(head_seed=10))                                   # rank 0's start (the same global draws on every rank)
    set_seed(0)
    model, head = modules(head_seed)
    from fastai.callback.training import GradientAccumulation
    steps = Steps()
    learn = Learner(DataLoaders(tdl, vdl, device='cpu'), model, loss_func=CrossEntropyLossFlat(), lr=0.05,
                    cbs=[SoftSilhouetteCallback(1.0), SupConCallback(0.5, head=head), steps] + ([GradientAccumulation(n_acc)] if n_acc else []))
    out = {}
    with parallel_ctx(learn), learn.no_bar(), learn.no_logging():
        if keep_tail: return dict(error=_error(lambda: learn.fit(1)), n_acc=learn.gradient_accumulation.n_acc)
        learn.fit(EPOCHS)
        out = dict(params=flat(model, head), start=start, valid_loss=learn.recorder.values[-1][1], train_loss=learn.recorder.values[-1][0],
                   n_iter=learn.train_iter, world=world(), steps=steps.n)
        if save_to is not None: out.update(saves(learn, save_to))
    return out

def _error(f) -> str:
    try: f()
    except ValueError as e: return str(e)
    return ''

def saves(learn, root) -> dict:
    "Inside `parallel_ctx`: fastai's view of the ranks, `learn.save` to a folder of this rank's, the validation predictions; `save` again under `run_one_parallel`'s `torchrun_env(local=True)` after the block's variables."
    import os
    from pathlib import Path
    from fastai.torch_core import num_distrib, rank_distrib
    from softsil_nb.parallel import torchrun_env
    rank = world()[0]
    learn.path = Path(root)/f'rank{rank}'
    learn.save('inside')
    seen = dict(fastai=(rank_distrib(), num_distrib()), n_valid=len(learn.get_preds()[1]))
    with torchrun_env(local=True):
        learn.save('spawned')
        seen['local'] = [os.environ[k] for k in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE')]
    return seen

ACC = 48                                                  # n_acc: two global batches a step (12 samples, 2 views: fastai counts 24 labels)

def _rank(cases, root):
    rank = world()[0]
    return ([fit(pk, head_seed=10 + rank) for pk in cases] + [fit(False, 10 + rank, n_acc=ACC, save_to=root)]
            + [fit(False, 10 + rank, n_acc=ACC, keep_tail=True)])

CASES = (False, True)

@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp('ranks')
    ranks = run_ranks(_rank, 2, CASES, str(root), timeout=300)     # one spawn for every test here
    single = [fit(pk, head_seed=10) for pk in CASES] + [fit(False, 10, n_acc=ACC)]
    return ranks, single, root

@pytest.mark.parametrize('case', range(len(CASES)), ids=['shuffled', 'pk'])
def test_two_ranks_equal_one_process_on_the_global_batch(runs, case):
    (r0, r1), single = runs[0], runs[1]
    a, b, s = r0[case], r1[case], single[case]
    assert a['world'] == (0, 2) and b['world'] == (1, 2) and s['world'] == (0, 1)
    assert a['n_iter'] == b['n_iter'] == s['n_iter'] == STEPS_PER_EPOCH * EPOCHS       # same number of batches on every rank
    assert torch.equal(a['params'], b['params'])                                         # the same weights on both ranks
    assert (a['params'] - s['params']).abs().max().item() < 1e-9                          # ... as one process on the global batch
    assert torch.equal(a['start'], s['start']) and (s['params'] - s['start']).abs().max().item() > 1e-3     # training moved the weights
    assert a['valid_loss'] == b['valid_loss'] and abs(a['valid_loss'] - s['valid_loss']) < 1e-9
    assert abs(a['train_loss'] - s['train_loss']) < 1e-9                                  # the logged loss: the global batch's

def test_gradient_accumulation_on_two_ranks_is_one_process_on_the_global_batch(runs):
    "GradientAccumulation(n_acc=48) on 2 ranks of 6 samples (12 views) a batch: a step every 2 global batches, the single process's weights with the same n_acc."
    (r0, r1), single = [r[len(CASES)] for r in runs[0]], runs[1][len(CASES)]
    assert r0['steps'] == r1['steps'] == single['steps'] == STEPS_PER_EPOCH * EPOCHS * 2 * 12 // ACC      # 4 steps, not 2
    assert torch.equal(r0['params'], r1['params']) and (r0['params'] - single['params']).abs().max().item() < 1e-9
    assert (single['params'] - runs[1][0]['params']).abs().max().item() > 1e-3              # accumulation changed the run
    assert abs(r0['train_loss'] - single['train_loss']) < 1e-9
    tail0, tail1 = [r[len(CASES) + 1] for r in runs[0]]                                   # a kept tail that splits unevenly: refused
    assert 'GradientAccumulation under ParallelCallback needs equal slices' in tail0['error'] and tail0['error'] == tail1['error']
    assert tail0['n_acc'] == ACC                                                             # and n_acc left as it was

def test_only_rank_0_saves_on_spawned_ranks(runs):
    "Ranks spawned without torchrun: fastai sees rank and world size inside parallel_ctx, so `learn.save` writes on rank 0 only; predictions not gathered twice."
    (r0, r1), root = [r[len(CASES)] for r in runs[0]], runs[2]
    assert r0['fastai'] == (0, 2) and r1['fastai'] == (1, 2)
    assert r0['n_valid'] == r1['n_valid'] == 16                                               # DeviceDataLoader.to_detach: the validation set once
    assert r0['local'] == ['0', '0', '2', '2'] and r1['local'] == ['1', '1', '2', '2']
    files = sorted(str(p.relative_to(root)) for p in root.rglob('*.pth'))
    assert files == ['rank0/models/inside.pth', 'rank0/models/spawned.pth'], files

def test_cli_run_nproc_2_writes_one_record_from_rank_0(tmp_path, capsys):
    "`softsil run --nproc 2` on a tiny configuration: one record (the ranks do not write), trained on 2 processes; a rerun appends nothing."
    import json
    from softsil_nb.cli import main
    from softsil_nb.experiments import RunConfig, ResultsFile
    res = tmp_path/'r.jsonl'
    argv = ['run', '--dataset', 'uci_digits', '--method', 'ce+sil', '--k', '3', '--epochs', '1', '--batch-size', '16', '--nproc', '2', '--results', str(res)]
    assert main(argv) == 0
    recs = ResultsFile(res).read()
    assert len(recs) == 1 and len(res.read_text().splitlines()) == 1
    cfg = RunConfig('uci_digits', 'ce+sil', 0, k_per_class=3, epochs=1, batch_size=16)
    assert recs[0]['key'] == cfg.key() and recs[0]['timing']['world_size'] == 2 and recs[0]['metrics']['n_eval'] == 359
    out = capsys.readouterr().out
    assert json.loads(out[out.index('{'):])['accuracy'] == recs[0]['metrics']['accuracy']        # the metrics printed once
    assert main(argv) == 0 and len(res.read_text().splitlines()) == 1
    assert 'already in' in capsys.readouterr().out

def test_nproc_under_torchrun_is_refused(monkeypatch, capsys):
    from softsil_nb.cli import main
    monkeypatch.setenv('WORLD_SIZE', '2')
    assert main(['run', '--nproc', '2']) == 2 and '--nproc' in capsys.readouterr().err

def _loader(rank, ws, sampler=None, autoaugment=False, drop_last=True, n=40):
    from fastai.data.transforms import IntToFloatTensor
    from softsil_nb.loaders import ArrayDataset, BatchAugment, PerSampleAutoAugment, DeviceDataLoader
    g = torch.Generator().manual_seed(0)
    ds = ArrayDataset(torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=g), torch.arange(n) % 4, classes=list('abcd'), split_idx=0)
    augs = ([PerSampleAutoAugment('cifar10', n_views=2, seed=5), BatchAugment(pad=2, flip=True, seed=6)] if autoaugment
            else [BatchAugment(pad=2, degrees=15, flip=True, n_views=2, seed=6)])
    dl = DeviceDataLoader(ds, bs=8, shuffle=True, drop_last=drop_last, sampler=sampler, seed=1, device='cpu', after_batch=[IntToFloatTensor()] + augs)
    return dl.shard(rank, ws)

@pytest.mark.parametrize('ws,pk,autoaugment', [(2, None, False), (2, (2, 4), True), (4, (4, 2), False), (2, (1, 8), False), (4, None, True)])
def test_shards_put_together_are_the_single_process_batches(ws, pk, autoaugment):
    "Every rank's slice of every batch, views included, is the single-process batch's rows; P x K slices are balanced."
    from softsil_nb.loaders import ClassBalancedSampler
    mk = lambda r, w: _loader(r, w, ClassBalancedSampler(*pk) if pk else None, autoaugment)
    whole, parts = list(mk(0, 1)), [list(mk(r, ws)) for r in range(ws)]
    assert all(len(p) == len(whole) for p in parts)
    for (xb, yb), *slices in zip(whole, *parts):
        n, seen = len(yb), []
        for r, (xs, ys) in enumerate(slices):
            pos = mk(r, ws).slice_positions(n)
            seen.append(pos)
            assert torch.equal(ys, yb[pos]) and torch.equal(xs.view(2, len(pos), -1), xb.view(2, n, -1)[:, pos])
            if pk:                                           # p / W whole classes of k, or k / W of each of the p classes
                counts = torch.bincount(ys.as_subclass(torch.Tensor), minlength=4)
                assert set(counts[counts > 0].tolist()) == {pk[1] if pk[0] % ws == 0 else pk[1] // ws}
        assert torch.equal(torch.cat(seen).sort().values, torch.arange(n))       # the slices partition the batch

def test_a_kept_tail_is_split_like_array_split():
    "Without drop_last every rank gets the same number of batches; the short tail in array_split's slices (no augmentation draws needed)."
    import numpy as np
    whole = [yb for _, yb in _loader(0, 1, drop_last=False, n=44)]
    with pytest.raises(ValueError, match='empty slice'): list(_loader(3, 4, drop_last=False, n=42))     # a tail of 2 on 4 augmented ranks
    ys = [[yb for _, yb in _loader(r, 4, drop_last=False, n=44)] for r in range(4)]
    assert all(len(y) == len(whole) == 6 for y in ys)
    for r in range(4): assert torch.equal(ys[r][-1], torch.from_numpy(np.array_split(whole[-1].numpy(), 4)[r]))
