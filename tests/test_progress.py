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
