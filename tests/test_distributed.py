"""Global-batch losses on 2 and 3 gloo processes (CPU, float64) against the single-process loss on the whole batch.

One process group per world size runs every case (spawning is the slow part); each rank compares its own results with
the single-process loss and its gradient, computed in the same rank without collectives, and sends back the errors.
The contract: every rank returns the global loss (so their mean is it), and a rank's gradient divided by the world
size (what DDP's averaging does) is the single-process gradient of its rows; through DDP, the parameter gradients."""
import copy
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning.utils.distributed import DistributedLossWrapper
from softsil_nb.distributed import run_ranks, rank_slice, world
from softsil_nb.losses import SoftSilhouetteLoss, SupConLoss, CombinedLoss, PMLLoss

TOL = 1e-6
SIZES = {  # rows each rank holds, by world size
    'even': {2: [6, 6], 3: [4, 4, 4]},
    'uneven': {2: [3, 9], 3: [2, 5, 7]},
    'single': {2: [11, 1], 3: [1, 6, 6]},       # a rank holding a single sample
    'novalid': {2: [10, 2], 3: [6, 5, 2]},      # the last rank holds only samples of classes with one member: nothing valid
    'empty': {2: [9, 0], 3: [6, 0, 7]},         # a rank holding no sample at all
    'onerank': {2: [7, 5], 3: [4, 4, 5]},       # class 5 lives on the last rank only
    'labels': {2: [5, 8], 3: [3, 4, 6]},        # labels that are not 0..C-1, and a different label set on every rank
}

def batch(kind, w, views=0, d=5, classes=3):
    "Embeddings [B, D] (or [B, V, D]), labels [B] and the rank sizes of one case."
    sizes = SIZES[kind][w]
    n = sum(sizes)
    g = torch.Generator().manual_seed(len(kind) * 10 + w + views)
    y = (torch.arange(n) % classes)[torch.randperm(n, generator=g)]
    last = rank_slice(sizes, w - 1)
    if kind == 'novalid': y[last] = torch.arange(7, 7 + sizes[-1])
    if kind == 'onerank': y[last.start:last.start + 2] = 5
    if kind == 'labels': y = torch.tensor([-3, 10, 42])[y]; y[last.start:last.start + 2] = 1000
    z = torch.randn((n, views, d) if views else (n, d), generator=g, dtype=torch.float64)
    return z, y, sizes

LOSSES = {  # name: (loss with or without global_batch, batch kinds)
    'sil_cosine': (lambda gb: SoftSilhouetteLoss(global_batch=gb), tuple(SIZES)),
    'sil_sqeuclidean': (lambda gb: SoftSilhouetteLoss(metric='sqeuclidean', temperature=0.5, global_batch=gb), tuple(SIZES)),
    'sil_euclidean': (lambda gb: SoftSilhouetteLoss(metric='euclidean', temperature=0.5, global_batch=gb), tuple(SIZES)),
    'sil_cosine_pairwise': (lambda gb: SoftSilhouetteLoss(method='pairwise', global_batch=gb), ('uneven', 'novalid', 'labels')),
    'sil_unnormalized_hard_smoothmax': (lambda gb: SoftSilhouetteLoss(metric='sqeuclidean', normalize=False, soft_min='hard',
                                                                       denominator='smoothmax', global_batch=gb), ('uneven', 'onerank')),
    'sil_logmeanexp': (lambda gb: SoftSilhouetteLoss(soft_min='logmeanexp', global_batch=gb), ('uneven', 'labels')),
    'sil_class_average': (lambda gb: SoftSilhouetteLoss(average='class', global_batch=gb), ('uneven', 'single', 'onerank', 'labels', 'novalid')),
    'sil_class_average_euclidean': (lambda gb: SoftSilhouetteLoss(metric='euclidean', average='class', global_batch=gb), ('uneven', 'onerank')),
    'sil_num_classes': (lambda gb: SoftSilhouetteLoss(num_classes=12, global_batch=gb), ('even', 'uneven', 'novalid', 'onerank', 'empty')),
    'sil_num_classes_class_average': (lambda gb: SoftSilhouetteLoss(num_classes=12, average='class', global_batch=gb), ('uneven', 'onerank')),
    'sil_sum': (lambda gb: SoftSilhouetteLoss(reduction='sum', global_batch=gb), ('uneven', 'novalid')),
    'sil_none': (lambda gb: SoftSilhouetteLoss(reduction='none', global_batch=gb), ('uneven', 'labels')),
    'supcon': (lambda gb: SupConLoss(global_batch=gb), tuple(SIZES)),
    'supcon_sum': (lambda gb: SupConLoss(reduction='sum', global_batch=gb), ('uneven',)),
    'supcon_none': (lambda gb: SupConLoss(reduction='none', global_batch=gb), ('uneven',)),
    'pml_gathered': (lambda gb: PMLLoss(pml_losses.ContrastiveLoss(), global_batch=gb), ('even', 'uneven', 'single')),
}
VIEWS = {'supcon_views': (lambda gb: SupConLoss(global_batch=gb), ('even', 'uneven', 'single', 'empty', 'novalid')),
         'supcon_views_none': (lambda gb: SupConLoss(reduction='none', global_batch=gb), ('uneven',))}

class Net(nn.Module):
    "A body, a classifier head and a projection head, with the loss inside (so DDP averages the loss's parameters too)."
    def __init__(self, loss, d_in=6, c=4):
        super().__init__()
        self.body, self.head, self.proj, self.loss = nn.Linear(d_in, 8), nn.Linear(8, c), nn.Linear(8, 5), loss
    def forward(self, x, y):                                        # x [B, V, d_in]: rows view-major, as the loaders give
        f = torch.tanh(self.body(x.transpose(0, 1).reshape(-1, x.shape[-1])))
        return self.loss((self.head(f), f, self.proj(f)), y)

MODELS = {  # CombinedLoss through DDP: name: (loss, batch kinds)
    'combined_ce_sil_supcon': (lambda gb: CombinedLoss(ce=1, supcon=0.5, sil=2, global_batch=gb), ('even', 'uneven', 'single', 'empty')),
    'combined_euclidean_class': (lambda gb: CombinedLoss(ce=1, supcon=0.5, sil=1, sil_loss=SoftSilhouetteLoss(metric='euclidean', average='class'),
                                                         label_smoothing=0.1, global_batch=gb), ('uneven',)),
    'combined_pml_proxyanchor': (lambda gb: CombinedLoss(ce=1, supcon=0.5, sil=1, pml=1, pml_loss=PMLLoss(pml_losses.ProxyAnchorLoss(4, 8)),
                                                         global_batch=gb), ('uneven', 'single')),
}

def _err(a, b): return (a - b).abs().max().item() if a.numel() else 0.0

def embedding_case(make, kind, views=0):
    "One loss on one batch: |rank value - reference| and |rank gradient / W - reference gradient of these rows|."
    rank, w = world()
    z, y, sizes = batch(kind, w, views)
    ref_loss, loss = make(False), make(True)
    zz = z.clone().requires_grad_()
    ref = ref_loss(zz, y)
    s = rank_slice(sizes)
    zr = z[s].clone().requires_grad_()
    got = loss(zr, y[s])
    if ref.ndim:                                                     # 'none': this rank's rows of the reference
        return dict(value=_err(got, ref.detach()[s]), grad=0.0)
    ref.backward(); got.backward()
    return dict(value=_err(got, ref.detach()), grad=_err(zr.grad / w, zz.grad[s]))

def model_case(make, kind):
    "CombinedLoss inside a DDP model: value and every parameter gradient against the single-process model on the whole batch."
    rank, w = world()
    _, y, sizes = batch(kind, w)
    x = torch.randn(sum(sizes), 2, 6, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    y = y % 4
    torch.manual_seed(0)
    ref = Net(make(False)).double()
    net = copy.deepcopy(ref)
    net.loss = make(True).double(); net.loss.load_state_dict(ref.loss.state_dict())
    ddp = nn.parallel.DistributedDataParallel(net)
    ref_value = ref(x, y); ref_value.backward()
    s = rank_slice(sizes)
    got = ddp(x[s], y[s]); got.backward()
    grads = [_err(p.grad, q.grad) for p, q in zip(net.parameters(), ref.parameters())]
    return dict(value=_err(got.detach(), ref_value.detach()), grad=max(grads), params=len(grads))

def wrapper_case(kind):
    "pytorch-metric-learning's DistributedLossWrapper on the same batch: its value over the reference, and its DDP-averaged gradient's error."
    rank, w = world()
    z, y, sizes = batch(kind, w)
    zz = z.clone().requires_grad_()
    ref = pml_losses.ContrastiveLoss()(zz, y); ref.backward()
    s = rank_slice(sizes)
    zr = z[s].clone().requires_grad_()
    got = DistributedLossWrapper(pml_losses.ContrastiveLoss())(zr, y[s]); got.backward()
    return dict(ratio=(got / ref).item(), grad=_err(zr.grad / w, zz.grad[s]))

def all_cases():
    "Every (name, function, arguments) of the suite."
    out = [(f'{n}-{k}', embedding_case, (m, k)) for n, (m, kinds) in LOSSES.items() for k in kinds]
    out += [(f'{n}-{k}', embedding_case, (m, k, 2)) for n, (m, kinds) in VIEWS.items() for k in kinds]
    out += [(f'{n}-{k}', model_case, (m, k)) for n, (m, kinds) in MODELS.items() for k in kinds]
    return out + [('pml_wrapper-even', wrapper_case, ('even',))]

def run_all():
    "On every rank: run every case, in the same order on every rank; a case that raises is recorded, not fatal."
    torch.manual_seed(0)
    out = {}
    for name, fn, args in all_cases():
        try: out[name] = fn(*args)
        except Exception as e:                                        # the ranks' collectives no longer line up: stop here
            out[name] = dict(error=f'{type(e).__name__}: {e}')
            break
    return out

NAMES = [n for n, _, _ in all_cases()]

@pytest.fixture(scope='module', params=[2, 3], ids=['2ranks', '3ranks'])
def ranks(request):
    return request.param, run_ranks(run_all, request.param, timeout=600)   # generous: a loaded machine starts processes slowly

def test_every_case_ran(ranks):
    w, res = ranks
    assert len(res) == w
    for rank, r in enumerate(res):
        assert not [n for n in r if 'error' in r[n]], f'rank {rank}: {[(n, r[n]) for n in r if "error" in r[n]]}'
        assert list(r) == NAMES

@pytest.mark.parametrize('name', [n for n in NAMES if not n.startswith('pml_wrapper')])
def test_global_equals_single_process(ranks, name):
    w, res = ranks
    for rank, r in enumerate(res):
        assert name in r, f'rank {rank} of {w}: the case did not run (an earlier case failed: see test_every_case_ran)'
        got = r[name]
        assert 'error' not in got, f'rank {rank}: {got["error"]}'
        assert got['value'] < TOL, f'rank {rank} of {w}: loss differs from the single-process loss by {got["value"]:.3g}'
        assert got['grad'] < TOL, f'rank {rank} of {w}: gradient differs from the single-process gradient by {got["grad"]:.3g}'

def test_model_cases_check_every_parameter(ranks):
    "The DDP cases compare all parameters: body, both heads, and the proxies of the pytorch-metric-learning term."
    w, res = ranks
    assert res[0]['combined_pml_proxyanchor-uneven']['params'] == 7
    assert res[0]['combined_ce_sil_supcon-even']['params'] == 6

def test_pml_wrapper_is_world_size_times_the_loss(ranks):
    "pytorch-metric-learning's own wrapper (equal slices only) returns W times the global loss; its gradients are exact after DDP's averaging."
    w, res = ranks
    for r in res:
        assert abs(r['pml_wrapper-even']['ratio'] - w) < TOL
        assert r['pml_wrapper-even']['grad'] < TOL

def test_without_process_group_plain_loss():
    "global_batch=True with no process group is the plain loss (no collective runs)."
    z, y, _ = batch('uneven', 2)
    for name, (make, _) in LOSSES.items():
        a, b = make(True)(z, y), make(False)(z, y)
        assert torch.equal(a, b), name
    assert world() == (0, 1)

def fail_on_last_rank():
    "Rank W-1 raises; the others wait in a collective that will never complete."
    rank, w = world()
    if rank == w - 1: raise ValueError('bad input on the last rank')
    torch.distributed.barrier()

def test_run_ranks_reports_a_failing_rank_instead_of_hanging():
    "Rank 0 is blocked in a barrier: the run still ends, with rank 1's error, instead of waiting for the timeout."
    with pytest.raises(RuntimeError, match='rank 1 of 2 failed(.|\n)*bad input on the last rank'):
        run_ranks(fail_on_last_rank, 2, timeout=600)
