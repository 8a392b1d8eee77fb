"""`accelerate launch` on 2 CPU processes: `softsil run` and a user's own script with `parallel_ctx`.

`accelerate launch --multi_gpu` runs torchrun (`torch.distributed.run`), which gives each process torchrun's variables (RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT); our code joins that group with gloo when there is no GPU. (`--cpu` starts
a single process: accelerate's multi-CPU mode runs mpirun; `check_launch` warns there, the last test.) No user config is
read: HF_HOME points at an empty folder (accelerate reads `HF_HOME/accelerate/default_config.yaml` with `--multi_gpu`)."""
import json, os, subprocess, sys, textwrap
from pathlib import Path
import pytest

pytest.importorskip('accelerate', reason='accelerate is optional (pip install softsil_nb[accelerate]; make test installs it)')
import torch

REPO = Path(__file__).resolve().parent.parent
ARGS = ['--num_processes', '2', '--num_machines', '1', '--mixed_precision', 'no', '--dynamo_backend', 'no']
THREADS = str(max(1, (os.cpu_count() or 1) // 2))          # run_one_parallel's threads per rank, so that the two runs compute alike

def launch(tmp_path, *args, mode='--multi_gpu') -> subprocess.CompletedProcess:
    "`accelerate launch MODE ARGS ...` in `tmp_path`, this checkout's package first, no user config, no inherited launcher variables."
    exe = Path(sys.executable).with_name('accelerate')
    cmd = [str(exe), 'launch'] if exe.exists() else [sys.executable, '-m', 'accelerate.commands.launch']     # the same parser
    env = {k: v for k, v in os.environ.items() if not k.startswith('ACCELERATE_') and k not in
           ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')}
    (tmp_path/'hf').mkdir(exist_ok=True)
    env.update(HF_HOME=str(tmp_path/'hf'), PYTHONPATH=os.pathsep.join([str(REPO)] + [p for p in [os.environ.get('PYTHONPATH')] if p]),
               OMP_NUM_THREADS=THREADS)
    r = subprocess.run(cmd + [mode] + ARGS + (['--main_process_port', '0'] if mode == '--multi_gpu' else []) + list(args),
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f'accelerate launch failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}'
    return r

def test_cli_run_under_accelerate_launch_is_softsil_run_nproc_2(tmp_path):
    "`accelerate launch --multi_gpu --num_processes 2 -m softsil_nb.cli run` on the CPU: one record (rank 0's), the metrics of `softsil run --nproc 2`."
    from softsil_nb.cli import main
    from softsil_nb.experiments import ResultsFile
    cfg = ['run', '--dataset', 'uci_digits', '--method', 'ce+sil', '--k', '3', '--epochs', '1', '--batch-size', '16']
    r = launch(tmp_path, '-m', 'softsil_nb.cli', *cfg, '--results', 'acc.jsonl')
    recs = ResultsFile(tmp_path/'acc.jsonl').read()
    assert len(recs) == 1 and len((tmp_path/'acc.jsonl').read_text().splitlines()) == 1
    assert recs[0]['timing']['world_size'] == 2 and recs[0]['metrics']['n_eval'] == 359
    assert r.stdout.count('"accuracy"') == 1                                      # rank 0 alone printed the metrics
    assert main(cfg + ['--nproc', '2', '--results', str(tmp_path/'nproc.jsonl')]) == 0
    ref = ResultsFile(tmp_path/'nproc.jsonl').read()[0]
    assert ref['key'] == recs[0]['key'] and ref['timing']['world_size'] == 2
    assert recs[0]['metrics'] == ref['metrics']                                  # the same 2 gloo ranks, the same threads: the same numbers

SCRIPT = '''
import sys, torch
from pathlib import Path
from torch import nn
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.data.core import DataLoaders
from fastai.data.transforms import IntToFloatTensor
from fastai.torch_core import set_seed
from fastai.callback.core import Callback
import fastai.callback.all
from softsil_nb.loaders import ArrayDataset, BatchAugment, DeviceDataLoader
from softsil_nb.callbacks import SoftSilhouetteCallback
from softsil_nb.parallel import parallel_ctx
from softsil_nb.distributed import world

class Double(nn.Module):
    def forward(self, x): return x.as_subclass(torch.Tensor).double()

class Seen(Callback):
    "The training samples this rank's loss saw (its slice of every global batch)."
    n = 0
    def after_loss(self): self.n += len(self.yb[0]) if self.training else 0

def flat(m): return torch.cat([p.detach().reshape(-1) for p in m.parameters()])

out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
set_seed(0)                                                        # the same seeds on every rank
g = torch.Generator().manual_seed(1)
x, y = torch.randint(0, 256, (64, 1, 4, 4), dtype=torch.uint8, generator=g), torch.arange(64) % 4
tdl = DeviceDataLoader(ArrayDataset(x[:48], y[:48], classes=list('abcd'), split_idx=0), bs=12, shuffle=True, drop_last=True, seed=3,
                       device='cpu', after_batch=[IntToFloatTensor(), BatchAugment(pad=1, degrees=10, flip=True, seed=4)])
vdl = DeviceDataLoader(ArrayDataset(x[48:], y[48:], classes=list('abcd'), split_idx=1), bs=16, seed=3, device='cpu', after_batch=[IntToFloatTensor()])
model = nn.Sequential(Double(), nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 4)).double()   # no BatchNorm, float64
start = flat(model)
learn = Learner(DataLoaders(tdl, vdl, device='cpu'), model, loss_func=CrossEntropyLossFlat(), lr=0.05, cbs=[SoftSilhouetteCallback(1.0), seen := Seen()], path=out)
with parallel_ctx(learn), learn.no_bar(), learn.no_logging():
    learn.fit(2)
    learn.save('final')                                            # fastai writes on rank 0 only
    rank, ws = world()
    torch.save(dict(params=flat(model), start=start, world=(rank, ws), n_iter=learn.train_iter, seen=seen.n,
                    valid_loss=learn.recorder.values[-1][1]), out/f'rank{rank}_of{ws}.pt')
'''

def test_own_script_under_accelerate_launch_equals_one_process(tmp_path):
    "A user's script (fastai Learner, float64, no BatchNorm, SoftSilhouetteCallback, parallel_ctx) on 2 CPU ranks: bitwise equal weights on both, one process's on the global batch to 1e-9."
    import runpy
    script = tmp_path/'train.py'; script.write_text(textwrap.dedent(SCRIPT))
    ranks, single = tmp_path/'ranks', tmp_path/'single'
    launch(tmp_path, str(script), str(ranks))
    argv = sys.argv
    try: sys.argv = [str(script), str(single)]; runpy.run_path(str(script), run_name='__main__')    # the same script, one process
    finally: sys.argv = argv
    r0, r1, s = (torch.load(f, weights_only=False) for f in (ranks/'rank0_of2.pt', ranks/'rank1_of2.pt', single/'rank0_of1.pt'))
    assert r0['world'] == (0, 2) and r1['world'] == (1, 2) and s['world'] == (0, 1)
    assert r0['n_iter'] == r1['n_iter'] == s['n_iter'] == 2 * 4                      # 4 global batches of 12 an epoch on every rank
    assert r0['seen'] == r1['seen'] == 2 * 48 // 2 and s['seen'] == 2 * 48            # each rank's loss saw its half of every batch
    assert r0['params'].dtype == torch.float64 and torch.equal(r0['params'], r1['params'])
    assert torch.equal(r0['start'], s['start']) and (s['params'] - s['start']).abs().max().item() > 1e-3     # training moved the weights
    assert (r0['params'] - s['params']).abs().max().item() < 1e-9
    assert r0['valid_loss'] == r1['valid_loss'] and abs(r0['valid_loss'] - s['valid_loss']) < 1e-9
    assert sorted(str(p.relative_to(ranks)) for p in ranks.rglob('*.pth')) == ['models/final.pth']     # rank 0 alone saved
    saved = torch.load(ranks/'models'/'final.pth', weights_only=False)['model']
    assert torch.equal(torch.cat([v.reshape(-1) for v in saved.values()]), r0['params'])

def test_accelerate_launch_cpu_starts_one_process_and_check_launch_warns(tmp_path):
    "`accelerate launch --cpu --num_processes 2` starts one process without WORLD_SIZE (not torchrun's variables): `init_parallel` warns and trains alone."
    probe = tmp_path/'probe.py'
    probe.write_text(textwrap.dedent('''
        import json, os, warnings
        from softsil_nb.parallel import init_parallel
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always'); started = init_parallel()
        print('PROBE', json.dumps(dict(started=started, world=os.environ.get('WORLD_SIZE'), warned=[str(o.message) for o in w])))
    '''))
    r = launch(tmp_path, str(probe), mode='--cpu')
    lines = [json.loads(l[len('PROBE '):]) for l in r.stdout.splitlines() if l.startswith('PROBE ')]
    assert len(lines) == 1                                                        # one process, not two
    assert lines[0]['started'] is False and lines[0]['world'] is None
    assert len(lines[0]['warned']) == 1 and 'accelerate launch --multi_gpu' in lines[0]['warned'][0]
