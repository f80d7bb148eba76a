"""Synchronous data-parallel training over MPI (mpi4py), on one machine or many.

p processes (ranks) start from the same parameters, each takes its own shard of every batch,
runs forward and backward on it, and before the optimizer step they replace their gradients
by the mean over all ranks. With equal shards of a global batch B, the mean of the shards'
mean-loss gradients is the gradient of the whole batch's mean loss:

    (1/p) sum_r grad( (p/B) sum_{i in shard r} l_i ) = grad( (1/B) sum_i l_i )

so every rank takes the same step as one process on batch B would, and the parameters stay
identical on all ranks (to the bit: every rank adds the same numbers in the same order).

    from tinygrad_edu import distributed as dist
    dist.init()                               # world of size 1 when not run by mpiexec
    model = dist.DistributedDataParallel(model)   # rank 0's weights on every rank
    for xb, yb in loader:                     # loader over a DistributedSampler's shard
        loss = F.cross_entropy(model(xb), yb)
        opt.zero_grad(); loss.backward()
        model.sync_gradients()                # one allreduce of all gradients, packed
        opt.step()

Run it alone (``python train.py``) or on N processes (``mpiexec -n N python train.py``):
the same script, unchanged. The MPI runtime comes from the package index
(``pip install 'tinygrad_edu[mpi]'``: mpi4py and the mpich wheel). docs/distributed.md has the
walk-through and the cost model.
"""
import os
import sys
import time

import numpy as np

from .backend import get_xp

_MPI_ENV = ("PMI_RANK", "PMI_SIZE", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")
_state = {"comm": None, "initialized": False}


class _Stats:
    """What ``allreduce_gradients`` did since the last ``reset()``: calls, bytes of gradients
    reduced per rank (the ring sends 2(p-1)/p of them) and seconds spent."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.calls, self.bytes, self.seconds = 0, 0, 0.0

    def __repr__(self):
        return f"<allreduce stats: {self.calls} calls, {self.bytes} bytes, {self.seconds:.4f} s>"


stats = _Stats()


def launched_by_mpi():
    """Whether this process was started by mpiexec / mpirun with more than one rank (their
    environment variables say so: MPICH's Hydra sets PMI_*, Open MPI OMPI_COMM_WORLD_*)."""
    sizes = [os.environ.get(k) for k in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")]
    return any(s is not None and s.isdigit() and int(s) > 1 for s in sizes)


def init():
    """Join the MPI world when launched by mpiexec with several ranks (idempotent); otherwise
    a world of size 1 that needs no MPI at all. Under MPI, an uncaught exception on any rank
    prints its traceback with the rank and aborts every rank (``MPI.COMM_WORLD.Abort``), so a
    failure never leaves the others waiting forever in a collective."""
    if _state["initialized"]:
        return
    if launched_by_mpi():
        try:
            from mpi4py import MPI
        except ImportError as e:
            raise RuntimeError(
                "tinygrad_edu.distributed: this process was started by mpiexec with "
                f"{world_size_from_env()} ranks, but mpi4py cannot be imported ({e}); install it "
                "with an MPI runtime: pip install 'tinygrad_edu[mpi]' (mpi4py and mpich)") from e
        _state["comm"] = MPI.COMM_WORLD
        _install_abort_hook()
    _state["initialized"] = True


def world_size_from_env():
    for k in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS"):
        if os.environ.get(k, "").isdigit():
            return int(os.environ[k])
    return 1


def _install_abort_hook():
    previous = sys.excepthook

    def hook(kind, value, tb):
        sys.stderr.write(f"[rank {rank()} of {world_size()}] uncaught exception; aborting all "
                         "ranks\n")
        previous(kind, value, tb)
        sys.stderr.flush()
        time.sleep(0.5)  # let mpiexec forward the traceback: Abort kills every rank's output
        _state["comm"].Abort(1)

    sys.excepthook = hook


def is_initialized():
    return _state["initialized"]


def _comm():
    if not _state["initialized"]:
        init()
    return _state["comm"]


def rank():
    """This process's index, 0 .. world_size() - 1 (0 without MPI)."""
    comm = _comm()
    return 0 if comm is None else comm.Get_rank()


_this_rank = rank  # (DistributedSampler's argument `rank` hides the function)


def world_size():
    comm = _comm()
    return 1 if comm is None else comm.Get_size()


def barrier():
    comm = _comm()
    if comm is not None:
        comm.Barrier()


def broadcast_object(obj, root=0):
    """Rank root's ``obj`` on every rank (pickled: only between the ranks of one job)."""
    comm = _comm()
    return obj if comm is None else comm.bcast(obj, root=root)


def _tensors(module_or_params):
    if hasattr(module_or_params, "named_parameters"):
        named = list(module_or_params.named_parameters())
        if hasattr(module_or_params, "named_buffers"):
            named += list(module_or_params.named_buffers())
        return named
    return [(str(i), p) for i, p in enumerate(module_or_params)]


def broadcast_parameters(module, root=0):
    """Copy rank root's parameters (and buffers) into every rank's ``module``, in place.

    First every rank's list of (name, shape, dtype) is compared with root's; on any difference
    every rank raises the same ValueError, naming the rank and the first parameter that
    differs, before any value moves."""
    comm = _comm()
    named = _tensors(module)
    if comm is None:
        return
    mine = [(n, tuple(t.shape), str(t.dtype)) for n, t in named]
    everyone = comm.allgather(mine)
    for r, theirs in enumerate(everyone):
        if theirs != everyone[root]:
            raise ValueError(f"broadcast_parameters: rank {r}'s parameters differ from rank "
                             f"{root}'s: {_first_difference(theirs, everyone[root])}")
    for _, t in named:
        buf = np.ascontiguousarray(_host(t.data))
        comm.Bcast(buf, root=root)
        t.data[...] = get_xp(t.data).asarray(buf)
        t._version[0] += 1


def _first_difference(a, b):
    for x, y in zip(a, b):
        if x != y:
            return f"{x[0]} {x[1]} {x[2]} against {y[0]} {y[1]} {y[2]}"
    return f"{len(a)} tensors against {len(b)}"


def _host(array):
    return array if isinstance(array, np.ndarray) else array.get()


def allreduce_gradients(module_or_params, op="mean", bucket_bytes=25 * 2**20):
    """Replace every gradient by its mean (or sum) over all ranks, in place.

    The gradients are packed into flat buffers of one dtype, of about ``bucket_bytes`` each
    (25 MiB, PyTorch DDP's default), and each buffer is reduced by one MPI Allreduce: a few
    large messages instead of one per parameter (each message costs a latency). A first, tiny
    allreduce of one flag per parameter finds those without a gradient on every rank (frozen
    or unused): they are skipped and keep ``grad`` None. A parameter with a gradient on some
    ranks only counts as zeros on the others, so every rank takes part with the same buffer
    layout (and all get the mean). With one rank nothing happens.

    On the GPU (parameters held as CuPy arrays) the buffers stay on the device and are reduced
    by NCCL (``cupy.cuda.nccl``), whose communicator is made once from a unique id that rank 0
    draws and MPI broadcasts; give each rank its own GPU (e.g. ``cupy.cuda.Device(rank() %
    n).use()`` or CUDA_VISIBLE_DEVICES) before building the model."""
    if op not in ("mean", "sum"):
        raise ValueError(f"allreduce_gradients: op must be 'mean' or 'sum', got {op!r}")
    params = [p for _, p in _tensors(module_or_params)
              if getattr(p, "requires_grad", False)]
    comm = _comm()
    if comm is None:
        return
    from mpi4py import MPI
    t0, p = time.perf_counter(), comm.Get_size()
    has_grad = np.array([q.grad is not None for q in params], dtype=np.uint8)
    comm.Allreduce(MPI.IN_PLACE, has_grad, op=MPI.MAX)
    params = [q for q, flag in zip(params, has_grad) if flag]
    for bucket in _buckets(params, bucket_bytes):
        dtype, xp = np.dtype(bucket[0].data.dtype), get_xp(bucket[0].data)
        flat = xp.empty(sum(q.data.size for q in bucket), dtype=dtype)
        offsets, at = [], 0
        for q in bucket:
            n = q.data.size
            flat[at:at + n] = 0 if q.grad is None else q.grad.data.ravel()
            offsets.append((at, n))
            at += n
        if xp is np:
            comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
        else:
            _nccl_allreduce_sum(flat)
        if op == "mean":
            flat /= dtype.type(p)
        for q, (at, n) in zip(bucket, offsets):
            values = flat[at:at + n].reshape(q.shape)
            if q.grad is None:
                from .tensor import Tensor
                q.grad = Tensor._wrap(values.copy())
            else:
                q.grad.data[...] = values
        stats.bytes += flat.nbytes
    stats.calls += 1
    stats.seconds += time.perf_counter() - t0


_NCCL_TYPES = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64"}


def _nccl_allreduce_sum(flat):
    """In-place sum of a contiguous CuPy buffer over all ranks, by NCCL on the current stream
    (waited for, so the time counted in ``stats`` is the reduction's)."""
    import cupy
    from cupy.cuda import nccl
    if _state.get("nccl") is None:
        comm = _comm()
        uid = comm.bcast(nccl.get_unique_id() if comm.Get_rank() == 0 else None, root=0)
        _state["nccl"] = nccl.NcclCommunicator(comm.Get_size(), uid, comm.Get_rank())
    name = _NCCL_TYPES.get(str(flat.dtype))
    if name is None:
        raise TypeError(f"allreduce_gradients: NCCL reduces {sorted(_NCCL_TYPES)} gradients, "
                        f"not {flat.dtype}")
    stream = cupy.cuda.get_current_stream()
    _state["nccl"].allReduce(flat.data.ptr, flat.data.ptr, flat.size, getattr(nccl, name),
                             nccl.NCCL_SUM, stream.ptr)
    stream.synchronize()


def _buckets(params, bucket_bytes):
    """Consecutive parameters of one dtype and one kind of array (NumPy or CuPy), grouped up to
    about bucket_bytes each."""
    buckets, current, size = [], [], 0
    for q in params:
        if current and (q.data.dtype != current[0].data.dtype
                        or type(q.data) is not type(current[0].data)
                        or size + q.data.nbytes > bucket_bytes):
            buckets.append(current)
            current, size = [], 0
        current.append(q)
        size += q.data.nbytes
    return buckets + ([current] if current else [])


class DistributedDataParallel:
    """PyTorch's name: wraps ``module`` for data-parallel training. At construction rank 0's
    parameters are broadcast to every rank; calling it calls the module; after ``backward()``,
    ``sync_gradients()`` averages the gradients over the ranks (one packed allreduce).

    PyTorch's DDP starts the allreduce from hooks inside backward; ours is one explicit call
    between ``backward()`` and ``optimizer.step()``, so the step is visible in the loop. Other
    attributes (``parameters``, ``train``, ``state_dict``...) are the module's, so a checkpoint
    of ``ddp`` or of ``ddp.module`` is the plain module's and loads with any number of ranks.
    """

    def __init__(self, module, bucket_bytes=25 * 2**20):
        broadcast_parameters(module)
        self.module, self.bucket_bytes = module, bucket_bytes

    def __call__(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def sync_gradients(self, op="mean"):
        allreduce_gradients(self.module, op=op, bucket_bytes=self.bucket_bytes)

    def __getattr__(self, name):
        return getattr(self.__dict__["module"], name)


class DistributedSampler:
    """PyTorch's name and semantics: the indices of rank ``rank``'s shard of a dataset of
    ``n`` samples. All ranks draw the same permutation (from ``seed + epoch``; call
    ``set_epoch`` before each epoch) and rank r takes every num_replicas-th index from r on.
    Without ``drop_last`` the permutation is padded with its first indices to a multiple of
    ``num_replicas``, so every rank gets ceil(n / p) samples (the same number of batches); with
    it, the tail is dropped and every rank gets floor(n / p)."""

    def __init__(self, n, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        n = len(n) if hasattr(n, "__len__") else n
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"DistributedSampler: n must be a dataset or a count >= 0, got {n!r}")
        num_replicas = world_size() if num_replicas is None else num_replicas
        rank_ = _this_rank() if rank is None else rank
        if not isinstance(num_replicas, (int, np.integer)) or num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be >= 1, got {num_replicas}")
        if not isinstance(rank_, (int, np.integer)) or not 0 <= rank_ < num_replicas:
            raise ValueError(f"DistributedSampler: rank must be in [0, {num_replicas}), got "
                             f"{rank_}")
        self.n, self.num_replicas, self.rank = int(n), int(num_replicas), int(rank_)
        self.shuffle, self.seed, self.drop_last, self.epoch = shuffle, seed, drop_last, 0
        self.num_samples = (self.n // self.num_replicas if drop_last
                            else -(-self.n // self.num_replicas))

    def set_epoch(self, epoch):
        self.epoch = epoch

    def indices(self):
        order = (np.random.default_rng(self.seed + self.epoch).permutation(self.n)
                 if self.shuffle else np.arange(self.n))
        total = self.num_samples * self.num_replicas
        if total > self.n and self.n:
            order = np.concatenate([order, np.resize(order, total - self.n)])
        return order[:total][self.rank::self.num_replicas]

    def __iter__(self):
        return iter(self.indices().tolist())

    def __len__(self):
        return self.num_samples
