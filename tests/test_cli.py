"The `softsil` command: options and their checks (answered before torch is imported), atomic writes, readable output."
import argparse, contextlib, io, json, os, pty, select, subprocess, sys, textwrap
from dataclasses import asdict
from pathlib import Path
import pytest
from softsil_nb import registry
from softsil_nb.cli import main, _parser, update_readme, atomic_write, BEGIN, END

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1'}

def _main(argv):
    "(exit status, stdout, stderr) of `main(argv)` in this process."
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: code = main(argv)
        except SystemExit as e: code = e.code
    return code, out.getvalue(), err.getvalue()

BAD = [(['run', '--epochs', '0'], '--epochs'), (['run', '--k', '-1'], '--k'), (['run', '--batch-size', 'x'], '--batch-size'),
       (['run', '--dataset', 'mnits'], '--dataset'), (['run', '--method', 'ce+silhouette'], '--method'), (['run', '--seed', '-2'], '--seed'),
       (['suite', 'papr'], 'SUITE'), (['suite', 'paper', '--shard', 'a/b'], '--shard'), (['suite', 'paper', '--shard', '3/2'], '--shard'),
       (['suite', 'paper', '--limit', '0'], '--limit'), (['overhead', '--rounds', '0'], '--rounds'), (['overhead', '--dataset', 'x'], '--dataset'),
       (['report', '--results', 'results/no-such.jsonl'], '--results'), (['report', '--readme', 'no-such-README.md'], '--readme'),
       (['nope'], 'COMMAND')]

@pytest.mark.parametrize('argv,option', BAD, ids=[' '.join(a) for a, _ in BAD])
def test_bad_values_answer_in_one_line_naming_the_option(argv, option, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    code, out, err = _main(argv)
    assert code == 2 and out == '' and err.count('\n') == 1 and f'argument {option}' in err, err

def test_help_and_bad_values_do_not_import_torch():
    script = textwrap.dedent('''
        import contextlib, io, sys
        from softsil_nb.cli import main
        for argv in (['--help'], ['suite', '--help'], ['run', '--help'], ['run', '--epochs', '0'], ['suite', 'papr'], ['report', '--results', 'nope.jsonl']):
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                try: code = main(argv)
                except SystemExit as e: code = e.code
            print(code, [m for m in ('torch', 'fastai', 'numpy') if m in sys.modules])
    ''')
    r = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=120)
    assert r.stdout.splitlines() == ['0 []'] * 3 + ['2 []'] * 3, r.stdout + r.stderr

def test_python_dash_m_runs_the_command():
    r = subprocess.run([sys.executable, '-m', 'softsil_nb.cli', 'suite', '--shard', 'a/b', 'paper'], capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == "softsil suite: error: argument --shard: expected I/N (e.g. 0/2), got 'a/b'", r.stderr

def test_every_option_has_help_a_default_and_registry_choices():
    p = _parser()
    subs = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert set(subs) == {'quick', 'run', 'suite', 'overhead', 'report', 'data'}
    for name, sp in subs.items():
        for a in sp._actions:
            if isinstance(a, argparse._HelpAction): continue
            assert a.help and a.help != argparse.SUPPRESS, (name, a.dest)
            if a.option_strings: assert not a.required, (name, a.dest)           # every option has a default
            if a.dest in ('dataset', 'method', 'name'):
                assert tuple(a.choices) == {'dataset': registry.DATASETS + registry.INTERNET_DATASETS, 'method': registry.METHODS,
                                            'name': registry.SUITES}[a.dest], (name, a.dest)
    help_text = subs['run'].format_help()
    assert 'ce+supcon+sil' in help_text and '(default: 30)' in help_text

def test_registry_holds_every_name_of_the_tables():
    "The registry lists every dataset, method and suite of the heavy tables, in their order."
    from softsil_nb.data import DATASETS, INTERNET_DATASETS
    from softsil_nb.learner import METHODS
    from softsil_nb.experiments import suite
    assert list(registry.DATASETS) == list(DATASETS)
    assert list(registry.INTERNET_DATASETS) == list(INTERNET_DATASETS)
    assert list(registry.METHODS) == list(METHODS)
    for s in registry.SUITES: assert suite(s), s                               # every listed suite builds
    with pytest.raises(ValueError, match='unknown suite'): suite('no-such-suite')
    for c in suite('paper') + suite('full') + suite('ablation') + suite('sweep') + suite('quick'):
        assert c.method in registry.METHODS and c.dataset in registry.DATASETS

def _records(path):
    from softsil_nb.experiments import ResultsFile, suite
    rf = ResultsFile(path)
    for c in suite('quick'):
        acc = dict(ce=0.8, **{'ce+sil': 0.82, 'ce+supcon+sil': 0.83})[c.method] + c.seed / 100
        rf.append(dict(key=c.key(), config=asdict(c), split='test', metrics=dict(accuracy=acc, silhouette_cosine=0.5), timing=dict(seconds_per_epoch=1.0)))
    return rf.path

def test_report_with_a_mistyped_results_path_fails_and_keeps_the_report(tmp_path):
    res = _records(tmp_path/'r.jsonl')
    report = tmp_path/'REPORT.md'
    assert _main(['report', '--results', str(res), '--out', str(report), '--overhead', str(tmp_path/'none.json')])[0] == 0
    good = report.read_text()
    assert '| ce+sil | 83.00 ± 1.00 | 83.00 |' in good
    code, _, err = _main(['report', '--results', str(tmp_path/'r.jsnl'), '--out', str(report)])
    assert code == 2 and 'no such file' in err and report.read_text() == good                # not "No results yet." over it

def test_report_readme_is_rewritten_atomically(tmp_path, monkeypatch):
    "A write that fails midway (a full disk) leaves the README, its markers and its hand-written text as they were."
    res = _records(tmp_path/'r.jsonl')
    readme = tmp_path/'README.md'; text = f'# title\n\nhand-written\n\n{BEGIN}\nold\n{END}\n\nafter\n'; readme.write_text(text)
    args = ['report', '--results', str(res), '--out', str(tmp_path/'REPORT.md'), '--overhead', str(tmp_path/'none.json'), '--readme', str(readme)]
    real = os.fsync
    def full(fd):
        if os.path.basename(os.readlink(f'/proc/self/fd/{fd}')).startswith('.README.md'): raise OSError(28, 'No space left on device')
        return real(fd)
    monkeypatch.setattr(os, 'fsync', full)
    with pytest.raises(OSError, match='No space left'): _main(args)
    monkeypatch.undo()
    assert readme.read_text() == text and sorted(p.name for p in tmp_path.iterdir()) == ['README.md', 'REPORT.md', 'r.jsonl']
    assert _main(args)[0] == 0
    new = readme.read_text()
    assert new.startswith(f'# title\n\nhand-written\n\n{BEGIN}\nRuns in the committed results files:') and new.endswith(f'{END}\n\nafter\n')

@pytest.mark.parametrize('what', ['report', 'overhead', 'figure'])
def test_outputs_are_written_through_a_temporary_file(what, tmp_path, monkeypatch):
    "report --out, overhead --out and the figures: a failure while writing keeps the old file whole."
    import softsil_nb.experiments as E, softsil_nb.cli as C
    res = _records(tmp_path/'r.jsonl')
    target = tmp_path/{'report': 'REPORT.md', 'overhead': 'overhead.json', 'figure': 'quick.png'}[what]
    target.write_text('old and whole')
    monkeypatch.setattr(E, 'measure_overhead', lambda d, rounds=10: {'ce': 1.0})
    monkeypatch.setattr(E, 'measure_peak_memory', lambda d: {'ce': 2.0})
    monkeypatch.setattr(E, 'run_suite', lambda *a, **k: 0)
    real = os.fsync
    def full(fd):
        if os.path.basename(os.readlink(f'/proc/self/fd/{fd}')).startswith(f'.{target.name}'): raise OSError(28, 'No space left on device')
        return real(fd)
    monkeypatch.setattr(os, 'fsync', full)
    with pytest.raises(OSError, match='No space left'):
        if what == 'report': _main(['report', '--results', str(res), '--out', str(target), '--overhead', str(tmp_path/'none.json')])
        elif what == 'overhead': _main(['overhead', '--out', str(target)])
        else: C.quick(str(res), str(target))
    assert target.read_text() == 'old and whole' and not [p for p in tmp_path.iterdir() if p.name.endswith('.tmp')]
    monkeypatch.setattr(os, 'fsync', real)
    if what == 'overhead':
        assert _main(['overhead', '--out', str(target)])[0] == 0 and json.loads(target.read_text())['seconds_per_step'] == {'ce': 1.0}

def test_atomic_write_keeps_the_mode(tmp_path):
    p = tmp_path/'f.txt'; p.write_text('a'); p.chmod(0o640)
    atomic_write(p, 'b'); assert p.read_text() == 'b' and p.stat().st_mode & 0o777 == 0o640

def test_suite_limit_is_honoured(tmp_path, monkeypatch):
    import softsil_nb.experiments as E
    ran = []
    def fake(cfg, split='test', device=None, bar=False, **kw):
        ran.append(cfg); return dict(key=cfg.key(), config=asdict(cfg), split=split, metrics=dict(accuracy=0.5))
    monkeypatch.setattr(E, 'run_one', fake)
    code, out, _ = _main(['suite', 'quick', '--limit', '2', '--results', str(tmp_path/'q.jsonl')])
    assert code == 0 and len(ran) == 2 and len(E.ResultsFile(tmp_path/'q.jsonl').read()) == 2
    assert out.splitlines()[1].startswith('[1/9] uci_digits ce seed 0: accuracy 50.00%'), out

RUN = ['-m', 'softsil_nb.cli', 'run', '--dataset', 'uci_digits', '--method', 'ce', '--k', '3', '--epochs', '1', '--batch-size', '16']

def test_output_to_a_file_has_no_progress_bar_text(tmp_path):
    "stdout a file (a log, CI): one line per run naming it, no bar redraws."
    with open(tmp_path/'log.txt', 'w') as log:
        r = subprocess.run([sys.executable, *RUN, '--results', str(tmp_path/'r.jsonl')], stdout=log, stderr=subprocess.PIPE, env=ENV, timeout=600)
    out = (tmp_path/'log.txt').read_text()
    assert r.returncode == 0, r.stderr[-2000:]
    assert '\r' not in out and '█' not in out and '|--' not in out, out
    assert any(l.startswith('[1/1] uci_digits ce seed 0: accuracy ') for l in out.splitlines()), out
    assert not any(l.startswith('epoch') for l in out.splitlines()), out        # a quiet run: no fastai table either

def test_output_to_a_terminal_keeps_the_bars(tmp_path):
    "stdout a terminal (a pty): fastai's progress bars are drawn."
    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, *RUN, '--results', str(tmp_path/'r.jsonl')], stdout=slave, stderr=subprocess.PIPE, env=ENV)
    os.close(slave)
    chunks = []
    while True:
        try: ready = select.select([master], [], [], 600)[0]
        except OSError: break
        if not ready: break
        try: b = os.read(master, 65536)
        except OSError: break
        if not b: break
        chunks.append(b)
    p.wait(timeout=60); os.close(master)
    out = b''.join(chunks).decode(errors='replace')
    assert p.returncode == 0, p.stderr.read()[-2000:]
    assert '\r' in out and ('█' in out or '|--' in out), out[-2000:]
    assert '[1/1] uci_digits ce seed 0 ...' in out and '[1/1] uci_digits ce seed 0: accuracy ' in out
