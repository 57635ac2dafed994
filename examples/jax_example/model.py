"""A small decoder-only transformer language model and its training step, in plain JAX.

Runs unchanged on the CPU (a few milliseconds per step once compiled) and on a TPU.
`bench.py` measures `step_fn`; everything here is fair game for optimization as long as
the model computes the same function (same loss, same update).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class ModelConfig:
    vocab: int = 256
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    d_ff: int = 256
    seq_len: int = 32
    batch: int = 8
    learning_rate: float = 1e-3
    dtype: str = "float32"  # parameters and activations


CONFIG = ModelConfig()


# ----------------------------------------------------------------------------- parameters

def init_params(config: ModelConfig = CONFIG, seed: int = 0) -> dict:
    dtype = jnp.dtype(config.dtype)
    rng = np.random.default_rng(seed)

    def dense(shape):
        scale = 1.0 / math.sqrt(shape[0])
        return jnp.asarray(rng.standard_normal(shape, dtype=np.float32) * scale, dtype)

    layers = []
    for _ in range(config.n_layers):
        layers.append({
            "ln1": jnp.asarray(np.ones(config.d_model), dtype),
            "wq": dense((config.d_model, config.d_model)),
            "wk": dense((config.d_model, config.d_model)),
            "wv": dense((config.d_model, config.d_model)),
            "wo": dense((config.d_model, config.d_model)),
            "ln2": jnp.asarray(np.ones(config.d_model), dtype),
            "w1": dense((config.d_model, config.d_ff)),
            "w2": dense((config.d_ff, config.d_model)),
        })
    return {
        "embed": dense((config.vocab, config.d_model)),
        "pos": dense((config.seq_len, config.d_model)),
        "layers": layers,
        "ln_f": jnp.asarray(np.ones(config.d_model), dtype),
    }


def init_opt_state(params: dict) -> dict:
    def zeros(tree):
        return jax.tree_util.tree_map(lambda p: jnp.asarray(np.zeros(p.shape, p.dtype)), tree)

    return {"mu": zeros(params), "nu": zeros(params), "count": jnp.asarray(0, jnp.int32)}


def make_batch(config: ModelConfig = CONFIG, seed: int = 0) -> dict:
    """Synthetic token data: the next token is a fixed function of the current one."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, config.vocab, size=(config.batch, config.seq_len + 1), dtype=np.int32)
    return {"inputs": jnp.asarray(tokens[:, :-1]), "targets": jnp.asarray(tokens[:, 1:])}


# ----------------------------------------------------------------------------- model

def rms_norm(x, scale):
    variance = jnp.mean(x * x, axis=-1, keepdims=True)
    return x * jax.lax.rsqrt(variance + 1e-6) * scale


def attention(layer, x, n_heads):
    batch, seq, d_model = x.shape
    head_dim = d_model // n_heads

    def heads(w):
        # [B, T, D] -> [B, H, T, Dh]
        return jnp.transpose((x @ w).reshape(batch, seq, n_heads, head_dim), (0, 2, 1, 3))

    q, k, v = heads(layer["wq"]), heads(layer["wk"]), heads(layer["wv"])
    scores = jnp.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(head_dim)
    mask = jnp.tril(jnp.ones((seq, seq)))
    scores = jnp.where(mask == 1, scores, -1e9)
    weights = jax.nn.softmax(scores, axis=-1)
    out = jnp.einsum("bhqk,bhkd->bhqd", weights, v)
    out = jnp.transpose(out, (0, 2, 1, 3)).reshape(batch, seq, d_model)
    return out @ layer["wo"]


def block(layer, x, n_heads):
    x = x + attention(layer, rms_norm(x, layer["ln1"]), n_heads)
    h = rms_norm(x, layer["ln2"])
    return x + jax.nn.gelu(h @ layer["w1"]) @ layer["w2"]


def forward(params, inputs, config: ModelConfig = CONFIG):
    x = params["embed"][inputs] + params["pos"][None, : inputs.shape[1]]
    for layer in params["layers"]:
        x = block(layer, x, config.n_heads)
    x = rms_norm(x, params["ln_f"])
    return x @ params["embed"].T  # tied output embedding: [B, T, vocab]


def loss_fn(params, batch, config: ModelConfig = CONFIG):
    logits = forward(params, batch["inputs"], config).astype(jnp.float32)
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    one_hot = jax.nn.one_hot(batch["targets"], config.vocab)
    return -jnp.mean(jnp.sum(one_hot * log_probs, axis=-1))


# ----------------------------------------------------------------------------- training step

def _check_finite(loss, grad_norm):
    if not (np.isfinite(np.asarray(loss)) and np.isfinite(np.asarray(grad_norm))):
        raise FloatingPointError(f"non-finite loss {loss} or grad norm {grad_norm}")


def adam_update(params, grads, opt_state, learning_rate, b1=0.9, b2=0.999, eps=1e-8):
    count = opt_state["count"] + 1
    mu = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, opt_state["mu"], grads)
    nu = jax.tree_util.tree_map(lambda n, g: b2 * n + (1 - b2) * g * g, opt_state["nu"], grads)
    mu_hat = jax.tree_util.tree_map(lambda m: m / (1 - b1 ** count), mu)
    nu_hat = jax.tree_util.tree_map(lambda n: n / (1 - b2 ** count), nu)
    new_params = jax.tree_util.tree_map(
        lambda p, m, n: (p - learning_rate * m / (jnp.sqrt(n) + eps)).astype(p.dtype),
        params, mu_hat, nu_hat,
    )
    return new_params, {"mu": mu, "nu": nu, "count": count}


loss_and_grad = jax.jit(jax.value_and_grad(loss_fn))


def train_step(params, opt_state, batch):
    """One optimizer step. Returns (params, opt_state, loss)."""
    loss, grads = loss_and_grad(params, batch)
    grad_norm = jnp.sqrt(sum(jnp.sum(g.astype(jnp.float32) ** 2) for g in jax.tree_util.tree_leaves(grads)))
    jax.debug.callback(_check_finite, loss, grad_norm)  # host round trip every step
    params, opt_state = adam_update(params, grads, opt_state, CONFIG.learning_rate)
    return params, opt_state, loss


# What bench.py measures. It is called as step_fn(params, opt_state, batch).
step_fn = train_step
