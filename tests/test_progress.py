"softsil_nb.progress: where progress bars are drawn, and the plain per-epoch table elsewhere."
import contextlib, io, os, pty, sys
import pytest
from softsil_nb.progress import interactive, progress_output, TextProgressCallback

def test_interactive_decisions(monkeypatch):
    "A terminal (a real pty) and a Jupyter kernel show bars; a file or a pipe does not; fastprogress's own test says yes to all."
    from softsil_nb.progress import interactive
    import fastprogress.fastprogress as fp
    master, slave = pty.openpty()
    with open(slave, 'w') as tty:
        monkeypatch.setattr(sys, 'stdout', tty); assert interactive()
    os.close(master)
    monkeypatch.setattr(sys, 'stdout', io.StringIO()); assert not interactive()
    assert fp.printing()                              # fastprogress 1.1.6 (the method is truthy): why we decide ourselves
    import IPython
    class ZMQInteractiveShell: pass
    monkeypatch.setattr(IPython, 'get_ipython', lambda: ZMQInteractiveShell())
    assert interactive()
    class CaptureShell: pass                          # execnb, which nbdev and the docs build run notebooks in
    monkeypatch.setattr(IPython, 'get_ipython', lambda: CaptureShell())
    assert not interactive()

def test_the_text_table_holds_the_recorder_values():
    "Off a terminal: a header and one line per epoch whose numbers are the Recorder's, and no bar text; fastai's callback back after."
    from fastai.test_utils import synth_learner
    learn = synth_learner(n_trn=64)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        with progress_output(learn): learn.fit(3, 1e-2)
    out = buf.getvalue(); lines = out.splitlines()
    assert '\r' not in out and '█' not in out and len(lines) == 4
    assert lines[0].split() == ['epoch', 'train_loss', 'valid_loss', 'time']
    for e, (line, vals) in enumerate(zip(lines[1:], learn.recorder.values)):
        cells = line.split()
        assert int(cells[0]) == e and [float(c) for c in cells[1:3]] == pytest.approx(vals[:2], abs=1e-6)
    assert hasattr(learn, 'progress') and not hasattr(learn, 'text_progress')
    with contextlib.redirect_stdout(buf := io.StringIO()):
        with progress_output(learn, table=False): learn.fit(1, 1e-2)
    assert buf.getvalue() == ''

def test_method_learner_output_to_a_file(tmp_path, monkeypatch):
    "method_learner with stdout a file: fastai's table as plain lines (the Recorder's numbers), no bar text; progress_output adds no second table; bars in a terminal."
    import torch
    from torch.utils.data import TensorDataset
    from sklearn.datasets import load_digits
    from fastai.data.core import DataLoaders
    from softsil_nb import progress
    from softsil_nb.progress import AutoProgressCallback
    from softsil_nb.learner import method_learner
    X, y = load_digits(return_X_y=True)
    X, y = torch.tensor(X[:300]).float().view(-1, 1, 8, 8) / 16, torch.tensor(y[:300])
    dls = DataLoaders.from_dsets(TensorDataset(X[:200], y[:200]), TensorDataset(X[200:], y[200:]), bs=50, device='cpu')
    learn = method_learner(dls, 'ce+sil', arch_kwargs=dict(widths=(8,)), feat_dim=16, proj_dim=8, metrics=[])
    assert type(learn.progress).__name__ == 'ProgressCallback' and sum(isinstance(cb, AutoProgressCallback) for cb in learn.cbs) == 1
    log = tmp_path / 'log.txt'
    with open(log, 'w') as f, contextlib.redirect_stdout(f):
        learn.fit(2, 1e-2)
        first = [list(v) for v in learn.recorder.values]
        with progress_output(learn): learn.fit(1, 1e-2)           # no duplicate table
    out = log.read_text(); lines = out.splitlines()
    assert '\r' not in out and '█' not in out and '%' not in out and len(lines) == 5, out
    head = ['epoch', 'train_loss', 'valid_loss', 'train_ce', 'train_sil', 'valid_ce', 'valid_sil', 'time']
    assert lines[0].split() == head and lines[3].split() == head
    for e, (line, vals) in enumerate(zip(lines[1:3], first)):
        cells = line.split()
        assert int(cells[0]) == e and [float(c) for c in cells[1:-1]] == pytest.approx(vals, abs=1e-6)
    assert sum(isinstance(cb, TextProgressCallback) for cb in learn.cbs) == 1 and learn.auto_progress.bars is None   # restored
    monkeypatch.setattr(progress, 'interactive', lambda: True)     # a terminal or Jupyter: fastai's bars
    with contextlib.redirect_stdout(buf := io.StringIO()): learn.fit(1, 1e-2)
    assert learn.auto_progress._show and '█' in buf.getvalue()
    with contextlib.redirect_stdout(buf := io.StringIO()):
        with progress_output(learn, bar=False): learn.fit(1, 1e-2)
    assert '█' not in buf.getvalue() and len(buf.getvalue().splitlines()) == 2

def test_no_bar_with_auto_progress(monkeypatch):
    "Inside `learn.no_bar()` nothing of ours (fastai's own plain lists, as on a Learner without bars), in a terminal too; after it the auto behaviour: the table off a terminal (no bar from get_preds or validate), bars in one."
    import ast
    from fastai.test_utils import synth_learner
    from softsil_nb import progress
    from softsil_nb.progress import auto_progress
    learn, plain = auto_progress(synth_learner(n_trn=32)), synth_learner(n_trn=32)       # plain: fastai's own Learner, the oracle
    for tty in (False, True):
        monkeypatch.setattr(progress, 'interactive', lambda: tty)
        outs = []
        for l in (learn, plain):
            with contextlib.redirect_stdout(buf := io.StringIO()):
                with l.no_bar(): l.fit(2, 1e-2); values = [list(v) for v in l.recorder.values]; l.get_preds()
            outs.append(buf.getvalue())
            lines = [ast.literal_eval(line) for line in buf.getvalue().splitlines()]     # fastai's logger: [epoch, losses..., time]
            assert [v[0] for v in lines] == [0, 1] and [v[1:3] for v in lines] == values
        assert '█' not in outs[0] and 'epoch' not in outs[0] and len(outs[0].splitlines()) == len(outs[1].splitlines()) == 2
    monkeypatch.setattr(progress, 'interactive', lambda: False)
    with contextlib.redirect_stdout(buf := io.StringIO()):
        learn.fit(2, 1e-2); values = [list(v) for v in learn.recorder.values]; learn.get_preds(); learn.validate()
    out = buf.getvalue(); lines = out.splitlines()
    assert '█' not in out and '%' not in out and len(lines) == 3 and lines[0].split() == ['epoch', 'train_loss', 'valid_loss', 'time'], out
    assert [float(c) for line in lines[1:] for c in line.split()[1:3]] == pytest.approx(sum(values, []), abs=1e-6)
    monkeypatch.setattr(progress, 'interactive', lambda: True)
    with contextlib.redirect_stdout(buf := io.StringIO()): learn.fit(1, 1e-2)
    assert '█' in buf.getvalue() and learn.auto_progress._show
    assert sum(type(cb).__name__ == 'ProgressCallback' for cb in learn.cbs) == 1                # no_bar's re-added callback, governed, not doubled
