"""The class memory and the reference set (`softsil_nb.memory`) against brute-force float64 loops over the weighted points,
pytorch-metric-learning's pair semantics for `ref_emb`, gradcheck, a hypothesis property, 2 gloo ranks against one process,
and fastai's save / load / continue against an uninterrupted fit."""
import math
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from hypothesis import given, settings, strategies as st
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu
from softsil_nb.memory import ClassMemory, memory_silhouette_samples, reference_silhouette_samples, attach_memory
from softsil_nb.losses import SoftSilhouetteLoss, soft_silhouette_loss
from softsil_nb.distributed import run_ranks, rank_slice, GlobalBatch

def dist(x, y, metric): return 1 - x @ y if metric == 'cosine' else (x - y).pow(2).sum()

def brute(q, yq, points, metric, tau, soft_min):
    "s(i) of each query from explicit weighted points [(z, label, weight, is_self_index)], loops in float64."
    out = []
    for i in range(len(q)):
        tot, wsum = {}, {}
        for j, (z, c, w, who) in enumerate(points):
            if who == i: continue                                      # the query itself
            tot[c] = tot.get(c, 0.) + w * dist(q[i], z, metric).item(); wsum[c] = wsum.get(c, 0.) + w
        own = int(yq[i])
        others = {c: tot[c] / wsum[c] for c in tot if c != own and wsum[c] > 0}
        if wsum.get(own, 0.) <= 0 or not others: out.append(0.); continue
        a = tot[own] / wsum[own]
        d = torch.tensor(list(others.values()), dtype=torch.float64)
        b = d.min().item() if soft_min == 'hard' else (torch.softmax(-d / tau, 0) * d).sum().item()
        out.append((b - a) / max(a, b, 1e-8))
    return torch.tensor(out, dtype=torch.float64)

@pytest.mark.parametrize('metric,normalize,soft_min', [('cosine', True, 'softmax'), ('sqeuclidean', False, 'softmax'),
                                                       ('sqeuclidean', True, 'hard')])
def test_memory_equals_weighted_points(metric, normalize, soft_min):
    "Four steps of batches that miss classes: each step's silhouettes equal the brute force over this batch (weight 1, self out) and every earlier batch at weight m^age."
    g, m, tau, past = torch.Generator().manual_seed(1), 0.7, 0.3, []
    mem = ClassMemory(5, 3, momentum=m).double()
    for t in range(4):
        x = torch.randn(6, 3, generator=g, dtype=torch.float64)
        y = torch.randint(0, 5, (6,), generator=g); y[:2] = t % 5           # at least one pair per step
        r = memory_silhouette_samples(x, y, mem, metric=metric, normalize=normalize, temperature=tau, soft_min=soft_min)
        z = F.normalize(x, dim=1) if normalize or metric == 'cosine' else x
        pts = [(p, c, m ** (t - 1 - s), -1) for p, c, s in past] + [(z[j], int(y[j]), 1., j) for j in range(6)]
        torch.testing.assert_close(r.silhouette, brute(z, y, pts, metric, tau, soft_min), atol=1e-10, rtol=0)
        past += [(z[j], int(y[j]), t) for j in range(6)]
    assert torch.allclose(mem.counts, sum(m ** (3 - s) * F.one_hot(torch.tensor([c]), 5)[0].double() for _, c, s in past))

def test_memory_sees_absent_classes_and_singletons():
    "With batches of 4 over 10 classes the plain loss has few valid samples; after a pass the memory makes all of them valid."
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 8, generator=g), torch.arange(40) % 10
    loss = SoftSilhouetteLoss(num_classes=10, memory=ClassMemory(10, 8), reduction='none')
    for s in range(0, 40, 4): loss(x[s:s + 4], y[s:s + 4])                       # every batch: 4 distinct classes, no pair
    plain = SoftSilhouetteLoss(num_classes=10, reduction='none')(x[:4], y[:4])
    assert (plain == 0).all()                                                   # singletons: nothing counts
    assert (loss(x[:4], y[:4]) > 0).all()

def test_memory_refusals_and_eval():
    mem = ClassMemory(3, 2)
    with pytest.raises(ValueError, match='class-sum'): SoftSilhouetteLoss(metric='euclidean', memory=mem)
    with pytest.raises(TypeError, match='ClassMemory'): SoftSilhouetteLoss(memory='big')
    with pytest.raises(ValueError, match='momentum'): ClassMemory(3, 2, momentum=1.0)
    with pytest.raises(ValueError, match='dim=2'): SoftSilhouetteLoss(memory=mem)(torch.randn(4, 3), torch.tensor([0, 0, 1, 1]))
    with pytest.raises(ValueError, match='0..num_classes-1'): SoftSilhouetteLoss(memory=mem)(torch.randn(4, 2), torch.tensor([0, 0, 1, 5]))
    with pytest.raises(ValueError, match='not both'): soft_silhouette_loss(torch.randn(4, 2), torch.tensor([0, 0, 1, 1]),
                                                                       ref_emb=torch.randn(3, 2), ref_labels=torch.tensor([0, 1, 1]), memory=mem)
    loss = SoftSilhouetteLoss(memory=mem).eval()
    loss(torch.randn(4, 2), torch.tensor([0, 0, 1, 1]))
    assert mem.counts.sum() == 0                                                # eval mode reads, does not update

def test_reference_set_pml_pairs():
    "a(i) and d(i, c) are the means over PML's positive / negative pairs of get_all_pairs_indices(labels, ref_labels): nothing skipped."
    g = torch.Generator().manual_seed(3)
    q, yq = torch.randn(7, 4, generator=g, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 7, 2])
    R, yr = torch.randn(10, 4, generator=g, dtype=torch.float64), torch.tensor([0, 0, 1, 1, 1, 2, 2, 2, 3, 0])
    for metric in ('cosine', 'sqeuclidean'):
        r = reference_silhouette_samples(q, yq, R, yr, metric=metric, soft_min='hard')
        zq, zr = F.normalize(q, dim=1), F.normalize(R, dim=1)
        a1, p, a2, n = lmu.get_all_pairs_indices(yq, yr)
        for i in range(len(q)):
            pos = [dist(zq[i], zr[j], metric) for a, j in zip(a1, p) if a == i]
            neg = {}
            for a, j in zip(a2, n):
                if a == i: neg.setdefault(int(yr[j]), []).append(dist(zq[i], zr[j], metric))
            if not pos: assert not r.valid[i] and r.silhouette[i] == 0; continue
            a_i, b_i = torch.stack(pos).mean(), min(torch.stack(v).mean() for v in neg.values())
            torch.testing.assert_close(r.silhouette[i], (b_i - a_i) / max(a_i, b_i), atol=1e-12, rtol=0)
    x, y = torch.randn(9, 3, generator=g), torch.randint(0, 3, (9,), generator=g)
    torch.testing.assert_close(soft_silhouette_loss(x, y, ref_emb=x, ref_labels=y), soft_silhouette_loss(x, y))   # PML: the batch itself
    assert not torch.allclose(soft_silhouette_loss(x, y, ref_emb=x.clone(), ref_labels=y.clone()), soft_silhouette_loss(x, y))  # a copy: self included
    with pytest.raises(ValueError, match='go together'): soft_silhouette_loss(x, y, ref_emb=x)

def test_gradcheck():
    "Gradients of the memory path (memory fixed) and of the reference path, to the queries and to the references."
    g = torch.Generator().manual_seed(5)
    mem = ClassMemory(4, 3, momentum=0.5).double()
    mem.update(torch.randn(4, 3, generator=g, dtype=torch.float64), torch.rand(4, generator=g, dtype=torch.float64) + 2, torch.tensor([2., 1, 0, 3], dtype=torch.float64))
    mem.eval()
    y = torch.tensor([0, 0, 1, 3, 2])
    for metric in ('cosine', 'sqeuclidean'):
        x = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda x: memory_silhouette_samples(x, y, mem, metric=metric, temperature=0.5, normalize=metric == 'cosine').silhouette, (x,))
        R = torch.randn(8, 3, generator=g, dtype=torch.float64, requires_grad=True)
        yr = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
        assert torch.autograd.gradcheck(lambda x, R: reference_silhouette_samples(x, y, R, yr, metric=metric, temperature=0.5, normalize=False).silhouette, (x, R))

@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 12), st.integers(2, 5))
def test_reference_set_is_a_weighted_set(seed, n_ref, classes):
    "Permuting the reference set, or taking each reference point twice, changes no silhouette."
    g = torch.Generator().manual_seed(seed)
    q, yq = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randint(0, classes, (5,), generator=g)
    R, yr = torch.randn(n_ref, 3, generator=g, dtype=torch.float64), torch.randint(0, classes, (n_ref,), generator=g)
    r = reference_silhouette_samples(q, yq, R, yr, num_classes=classes).silhouette
    perm = torch.randperm(n_ref, generator=g)
    torch.testing.assert_close(reference_silhouette_samples(q, yq, R[perm], yr[perm], num_classes=classes).silhouette, r, atol=1e-12, rtol=0)
    torch.testing.assert_close(reference_silhouette_samples(q, yq, R.repeat(2, 1), yr.repeat(2), num_classes=classes).silhouette, r, atol=1e-12, rtol=0)

SIZES, STEPS = [3, 7], 3

def memory_steps(world_size):
    "Three steps of a global batch of 10 over 6 classes (the slices miss classes): losses, slice gradients, final memory; on this rank's slice when `world_size` > 1."
    g = torch.Generator().manual_seed(11)
    loss = SoftSilhouetteLoss(num_classes=6, memory=ClassMemory(6, 4, momentum=0.8).double(), global_batch=world_size > 1)
    s = rank_slice(SIZES) if world_size > 1 else slice(0, sum(SIZES))
    out = []
    for _ in range(STEPS):
        x, y = torch.randn(sum(SIZES), 4, generator=g, dtype=torch.float64), torch.randint(0, 6, (sum(SIZES),), generator=g)
        z = x[s].clone().requires_grad_()
        v = loss(z, y[s]); v.backward()
        out.append((v.detach(), z.grad))
    return out, loss.memory.state_dict()

def test_two_ranks_equal_one_process():
    "On 2 gloo ranks, every step's loss, each slice's gradient (x world size, DDP's averaging) and the memory on every rank equal one process on the whole batch."
    single, single_mem = memory_steps(1)
    ranks = run_ranks(memory_steps, 2, 2, timeout=600)
    for r, (steps, mem) in enumerate(ranks):
        s = rank_slice(SIZES, r)
        for (v, grad), (v1, g1) in zip(steps, single):
            torch.testing.assert_close(v, v1, atol=1e-10, rtol=0)
            torch.testing.assert_close(grad / 2, g1[s], atol=1e-10, rtol=0)
        for k in mem: torch.testing.assert_close(mem[k], single_mem[k], atol=1e-10, rtol=0)

def learner(tmp_path, memory=True):
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.learner import Learner
    from fastai.optimizer import Adam
    from torch.utils.data import TensorDataset
    from softsil_nb.callbacks import SoftSilhouetteCallback
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(48, 6, generator=g), torch.randint(0, 5, (48,), generator=g)
    dls = DataLoaders(DataLoader(TensorDataset(x[:32], y[:32]), bs=8, shuffle=False), DataLoader(TensorDataset(x[32:], y[32:]), bs=8))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 5))
    cb = SoftSilhouetteCallback(memory=ClassMemory(5, 8)) if memory else SoftSilhouetteCallback(num_classes=5)
    return Learner(dls, model, loss_func=nn.CrossEntropyLoss(), opt_func=Adam, cbs=[cb], path=tmp_path)

def test_save_load_continue(tmp_path):
    "fit 1 epoch, learn.save, a new Learner loads it and fits 1 more: weights and memory equal 2 uninterrupted epochs; a reset memory would not."
    def fit(learn, n):
        with learn.no_bar(), learn.no_logging(): learn.fit(n, 1e-2)
    full = learner(tmp_path); fit(full, 2)
    a = learner(tmp_path); fit(a, 1); a.save('half')
    assert '0.class_memory.counts' in a.model.state_dict() and a.model[0].class_memory.counts.sum() > 0
    b = learner(tmp_path); b.load('half'); fit(b, 1)
    c = learner(tmp_path); c.load('half'); c.model[0].class_memory.reset(); fit(c, 1)
    for k, v in full.model.state_dict().items(): torch.testing.assert_close(b.model.state_dict()[k], v, atol=1e-6, rtol=0)
    assert not torch.allclose(c.model[0].weight, full.model[0].weight, atol=1e-6)     # the memory matters to the continuation
    torch.testing.assert_close(full.model[0].class_memory.counts.sum().item(), sum(8 * 0.9 ** k for k in range(8)))   # 8 training steps, validation left it alone

def test_method_learner_attaches_memory():
    "method_learner puts the silhouette term's memory in the model (so learn.save keeps it)."
    from softsil_nb.learner import method_learner
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from torch.utils.data import TensorDataset
    x, y = torch.randn(16, 1, 8, 8), torch.arange(16) % 4
    dls = DataLoaders(DataLoader(TensorDataset(x, y), bs=8), DataLoader(TensorDataset(x, y), bs=8))
    mem = ClassMemory(4, 16)
    learn = method_learner(dls, 'ce+sil', n_classes=4, feat_dim=16, sil_loss=SoftSilhouetteLoss(num_classes=4, memory=mem), metrics=[])
    from softsil_nb.callbacks import SoftSilhouetteCallback
    term = next(cb for cb in learn.cbs if isinstance(cb, SoftSilhouetteCallback))
    assert learn.model.class_memory is mem and term.sil_loss.memory is mem
