"""RBMs, autoencoders and greedy pre-training on a real GPU: the same code as on the CPU, with
random numbers from CuPy's generator. Deterministic results (free energy, conditionals, losses,
gradients for a given chain end) are compared with the CPU; sampled ones are checked for their
device, values and formulas. Skipped unless CuPy imports and sees a GPU."""
import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu.backend import cuda_available, device_of
from tinygrad_edu.nn.autoencoder import DeepAutoencoder, TiedAutoencoder
from tinygrad_edu.nn.rbm import RBM
from tinygrad_edu.pretraining import (codes, mlp_from_pretrained, pretrain_autoencoders,
                                      pretrain_rbms)

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not cuda_available(), reason="needs CuPy and a CUDA GPU")]

TOL = dict(rtol=1e-4, atol=1e-5)
V = (np.random.default_rng(0).random((8, 12)) < 0.4).astype(np.float32)


def pair(cls, *args, **kwargs):
    tg.manual_seed(0)
    cpu = cls(*args, **kwargs)
    gpu = cls(*args, device="cuda", **kwargs)
    gpu.load_state_dict(cpu.state_dict())
    return cpu, gpu


def test_rbm_on_gpu_matches_cpu():
    cpu, gpu = pair(RBM, 12, 5)
    assert device_of(gpu.W.data) == "cuda"
    np.testing.assert_allclose(gpu.free_energy(V).numpy(), cpu.free_energy(V).numpy(), **TOL)
    p, s = gpu.h_given_v(V)
    np.testing.assert_allclose(p.numpy(), cpu.h_given_v(V)[0].numpy(), **TOL)
    assert s.device == "cuda" and set(np.unique(s.numpy())) <= {0.0, 1.0}
    tg.manual_seed(3)
    loss = gpu.cd_loss(V, k=2)
    tg.manual_seed(3)
    _, chain_end = gpu.gibbs(V, k=2)
    assert chain_end.device == "cuda"
    loss.backward()
    vm = chain_end.numpy()  # the CPU model's loss at the GPU's chain end: same gradient
    ref = cpu.free_energy(V).mean() - cpu.free_energy(vm).mean()
    ref.backward()
    for g, c in zip(gpu.parameters(), cpu.parameters()):
        np.testing.assert_allclose(g.grad.numpy(), c.grad.numpy(), **TOL)
    assert np.isfinite(gpu.pseudo_likelihood(V)) and np.isfinite(
        gpu.reconstruction_cross_entropy(V))


def test_pcd_chains_follow_the_module_to_the_gpu():
    tg.manual_seed(0)
    rbm = RBM(12, 5)
    rbm.cd_loss(V, persistent=True)
    rbm.to("cuda")
    rbm.cd_loss(tg.Tensor(V, device="cuda"), k=3, persistent=True)
    assert rbm.chains.device == "cuda" and rbm.chains.shape == (8, 5)


def test_autoencoders_on_gpu_match_cpu():
    cpu, gpu = pair(TiedAutoencoder, 12, 5, corruption=0.3)
    cpu.eval()
    gpu.eval()
    lc, lg = cpu.loss(V), gpu.loss(V)
    np.testing.assert_allclose(lg.numpy(), lc.numpy(), **TOL)
    lc.backward()
    lg.backward()
    for g, c in zip(gpu.parameters(), cpu.parameters()):
        np.testing.assert_allclose(g.grad.numpy(), c.grad.numpy(), **TOL)
    gpu.train()
    masked = gpu.corrupt(tg.Tensor(np.ones((200, 12), np.float32), device="cuda"))
    assert masked.device == "cuda" and abs((masked.numpy() == 0).mean() - 0.3) < 0.05
    cpu, gpu = pair(DeepAutoencoder, (12, 8, 3))
    np.testing.assert_allclose(gpu(V).numpy(), cpu(V).numpy(), **TOL)


def test_pretraining_on_gpu():
    layers = pretrain_rbms((12, 6, 4), V, epochs=2, batch_size=4, device="cuda")
    assert all(m.W.device == "cuda" for m in layers)
    dae = pretrain_autoencoders((12, 6), V, corruption=0.2, epochs=2, batch_size=4,
                                device="cuda")
    assert codes(layers, V).device == "cuda" and dae[0].weight.device == "cuda"
    model = mlp_from_pretrained(layers, 3)
    out = model(tg.Tensor(V, device="cuda"))
    assert out.device == "cuda" and out.shape == (8, 3)
