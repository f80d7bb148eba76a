"""The floor: the tutorials' three dense MNIST models, trained by hand-written NumPy float32.

What an eager NumPy engine cannot beat: the same maths as ours (``tests/
test_handwritten_reference.py`` checks that a few steps give our engine's parameters), with no
tape, no Tensor objects and no temporaries that in-place NumPy can avoid. Every array a step
needs is allocated once, for a full batch; a shorter last batch uses the first rows. No engine
import: ``benchmarks/mnist.py`` times these against ours and PyTorch.

* ``LogisticRegression``: softmax(x W^T), W (10, 784), no bias; SGD lr 0.05
  (examples/logistic_regression.py).
* ``MLP``: 784 -> 625 sigmoid -> 10; SGD lr 0.05 (examples/mlp.py).
* ``ModernNet``: dropout 0.2, 784 -> 625 ReLU, dropout 0.5, -> 625 ReLU, dropout 0.5, -> 10;
  RMSprop lr 1e-3, alpha 0.9, eps 1e-6 inside the square root (examples/modern_net.py).

Parameters are lists of arrays in the order of our ``model.parameters()`` (weight (out, in),
then bias, per layer); ``init_params`` draws the examples' init: weights N(0, 0.01^2), biases 0.
Dropout draws its uniforms with ``Generator.random(dtype=float32)`` in the order of the layers,
as our engine does, so the same seed gives the same masks.
"""
import numpy as np

BATCH = 128
F32 = np.float32


def init_params(sizes, bias=True, rng=0):
    """[W1, b1, W2, b2, ...] for layer sizes (784, 625, 10): W ~ N(0, 0.01^2), b = 0."""
    rng = np.random.default_rng(rng)
    params = []
    for n_in, n_out in zip(sizes, sizes[1:]):
        params.append((0.01 * rng.standard_normal((n_out, n_in))).astype(F32))
        if bias:
            params.append(np.zeros(n_out, F32))
    return params


def softmax_cross_entropy_(z, y):
    """Mean cross-entropy of logits z (n, K) against labels y (n,); z is overwritten with the
    gradient of that mean.

        loss = mean_n [ log sum_k exp(z_nk) - z_n,y_n ],   dloss/dz = (softmax(z) - onehot(y)) / n
    """
    n = len(z)
    rows = np.arange(n)
    z -= z.max(axis=1, keepdims=True)     # shift by the row maximum: every exp() <= 1
    picked = z[rows, y]                   # z_n,y_n (a copy)
    np.exp(z, out=z)
    total = z.sum(axis=1, keepdims=True)
    loss = float(np.mean(np.log(total[:, 0]) - picked))
    z /= total                            # softmax
    z[rows, y] -= 1
    z *= F32(1.0 / n)
    return loss


def sgd_(p, g, lr):
    """p = p - lr g (g is overwritten)."""
    g *= lr
    p -= g


def rmsprop_(p, g, v, tmp, lr=1e-3, alpha=0.9, eps=1e-6):
    """v = alpha v + (1 - alpha) g^2;  p = p - lr g / sqrt(v + eps): eps inside the root, as in
    the Theano tutorial and ``optim.RMSprop(eps_inside_sqrt=True)``. g and tmp are overwritten;
    the products are taken in the order our optimizer takes them."""
    v *= alpha
    np.multiply(g, 1.0 - alpha, out=tmp)
    tmp *= g
    v += tmp
    np.add(v, eps, out=tmp)
    np.sqrt(tmp, out=tmp)
    g *= lr
    g /= tmp
    p -= g


def linear_(x, w, b, out):
    """out = x W^T + b (b may be None)."""
    np.matmul(x, w.T, out=out)
    if b is not None:
        out += b
    return out


def linear_grads_(g, x, gw, gb):
    """dloss/dW = g^T x and dloss/db = sum of g's rows, for out = x W^T + b."""
    np.matmul(g.T, x, out=gw)
    if gb is not None:
        np.sum(g, axis=0, out=gb)


class LogisticRegression:
    """softmax(x W^T) with SGD:  z = x W^T;  dz = (softmax(z) - onehot(y)) / n;  W -= lr dz^T x."""

    def __init__(self, params, lr=0.05, batch=BATCH):
        self.params = [p.astype(F32, copy=True) for p in params]
        self.lr = lr
        self.z = np.empty((batch, 10), F32)
        self.grads = [np.empty_like(p) for p in self.params]

    def step(self, x, y):
        (w,), (gw,) = self.params, self.grads
        z = linear_(x, w, None, self.z[:len(x)])
        loss = softmax_cross_entropy_(z, y)        # z is now dloss/dz
        linear_grads_(z, x, gw, None)
        sgd_(w, gw, self.lr)
        return loss


class MLP:
    """784 -> 625 sigmoid -> 10 with SGD. Forward: a = x W1^T + b1, h = sigmoid(a) computed as
    (1 + tanh(a / 2)) / 2 (as our Sigmoid op), z = h W2^T + b2. Backward: dz as above,
    dh = dz W2, da = dh h (1 - h), then each layer's dW = d^T input, db = column sums."""

    def __init__(self, params, lr=0.05, batch=BATCH):
        self.params = [p.astype(F32, copy=True) for p in params]
        self.lr = lr
        hidden = self.params[0].shape[0]
        self.h, self.dh, self.tmp = (np.empty((batch, hidden), F32) for _ in range(3))
        self.z = np.empty((batch, self.params[2].shape[0]), F32)
        self.grads = [np.empty_like(p) for p in self.params]

    def step(self, x, y):
        (w1, b1, w2, b2), (gw1, gb1, gw2, gb2), n = self.params, self.grads, len(x)
        h = linear_(x, w1, b1, self.h[:n])
        h *= 0.5                                   # sigmoid, in place
        np.tanh(h, out=h)
        h += 1
        h *= 0.5
        z = linear_(h, w2, b2, self.z[:n])
        loss = softmax_cross_entropy_(z, y)
        linear_grads_(z, h, gw2, gb2)
        dh = np.matmul(z, w2, out=self.dh[:n])
        dh *= h                                    # sigmoid' = h (1 - h)
        dh *= np.subtract(1, h, out=self.tmp[:n])
        linear_grads_(dh, x, gw1, gb1)
        for p, g in zip(self.params, self.grads):
            sgd_(p, g, self.lr)
        return loss


class ModernNet:
    """Dropout 0.2 -> 784-625 ReLU -> dropout 0.5 -> 625-625 ReLU -> dropout 0.5 -> 625-10, with
    RMSprop. Inverted dropout multiplies by a mask m = (u >= p) / (1 - p), u ~ U[0, 1) drawn
    fresh each step; its backward multiplies the gradient by the same m. ReLU's backward keeps
    the gradient where its output is > 0: after dropout in place, h > 0 exactly where the unit
    was active and kept, and the gradient is already 0 where it was dropped."""

    P = (0.2, 0.5, 0.5)

    def __init__(self, params, lr=1e-3, alpha=0.9, eps=1e-6, batch=BATCH, rng=0):
        self.params = [p.astype(F32, copy=True) for p in params]
        self.hyper = dict(lr=lr, alpha=alpha, eps=eps)
        self.rng = np.random.default_rng(rng)
        widths = [self.params[0].shape[1]] + [w.shape[0] for w in self.params[::2]]
        self.acts = [np.empty((batch, k), F32) for k in widths]   # x dropped, h1, h2, z
        self.masks = [np.empty((batch, k), F32) for k in widths[:3]]
        self.deltas = [np.empty((batch, k), F32) for k in widths[1:3]]
        self.grads = [np.empty_like(p) for p in self.params]
        self.square_avg = [np.zeros_like(p) for p in self.params]
        self.tmp = [np.empty_like(p) for p in self.params]

    def _mask(self, i, n):
        m = self.masks[i][:n]
        self.rng.random(dtype=F32, out=m)
        np.greater_equal(m, self.P[i], out=m)      # 1 where kept, else 0
        m *= F32(1.0 / (1.0 - self.P[i]))
        return m

    def step(self, x, y):
        (w1, b1, w2, b2, w3, b3), n = self.params, len(x)
        gw1, gb1, gw2, gb2, gw3, gb3 = self.grads
        x0 = np.multiply(x, self._mask(0, n), out=self.acts[0][:n])
        h1 = linear_(x0, w1, b1, self.acts[1][:n])
        np.maximum(h1, 0, out=h1)
        h1 *= self._mask(1, n)
        h2 = linear_(h1, w2, b2, self.acts[2][:n])
        np.maximum(h2, 0, out=h2)
        h2 *= self._mask(2, n)
        z = linear_(h2, w3, b3, self.acts[3][:n])
        loss = softmax_cross_entropy_(z, y)
        linear_grads_(z, h2, gw3, gb3)
        d2 = np.matmul(z, w3, out=self.deltas[1][:n])
        d2 *= self.masks[2][:n]                    # dropout's backward
        d2 *= h2 > 0                               # ReLU's backward
        linear_grads_(d2, h1, gw2, gb2)
        d1 = np.matmul(d2, w2, out=self.deltas[0][:n])
        d1 *= self.masks[1][:n]
        d1 *= h1 > 0
        linear_grads_(d1, x0, gw1, gb1)            # x needs no gradient: stop here
        for p, g, v, tmp in zip(self.params, self.grads, self.square_avg, self.tmp):
            rmsprop_(p, g, v, tmp, **self.hyper)
        return loss


MODELS = {"logistic_regression": (LogisticRegression, (784, 10), False),
          "mlp": (MLP, (784, 625, 10), True),
          "modern_net": (ModernNet, (784, 625, 625, 10), True)}


def build(name, params=None, rng=0, **kwargs):
    """The hand-written twin of an example's model, from ``params`` or the examples' init."""
    cls, sizes, bias = MODELS[name]
    if params is None:
        params = init_params(sizes, bias, rng)
    if cls is ModernNet:
        kwargs.setdefault("rng", rng)
    return cls(params, **kwargs)


def epoch(model, X, y, batches, batch=BATCH):
    """``batches`` sequential batches of ``batch`` rows (the last may be shorter); the last loss."""
    for i in range(batches):
        loss = model.step(X[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch])
    return loss
