"""A learned reference value (paper section 7.3): instead of Monte-Carlo returns, Cal-QL can
bound its Q-values by a network V(s) fitted to the behaviour policy's value on the offline data.

The fit is fitted value evaluation, TD(0) on dataset transitions with a soft-updated target:
    V(s) <- r + gamma * (1 - d) * V_target(s').
Because s' is where the behaviour policy went, the fixed point is the behaviour value V^mu(s);
unlike Monte-Carlo returns it needs no whole trajectories, and it bootstraps through time-outs.

The same network and optimiser also fit a value by Monte-Carlo regression, V(s) <- G, on chosen
rows (`fit_to_returns`): --reference best fits it on the best trajectories' rows only
(docs/algorithm.md section 4.8).
"""

import functools
from typing import Any

import flax.struct as struct
import jax
import jax.numpy as jnp
import optax
from flax.training.train_state import TrainState

from calql.agent.networks import ValueNetwork
from calql.agent.state import adam
from calql.data.transitions import Transitions

Metrics = dict[str, jax.Array]


class ReferenceState(struct.PyTreeNode):
    value: TrainState
    target_params: Any
    discount: float = struct.field(pytree_node=False)
    tau: float = struct.field(pytree_node=False)


@functools.cache
def _network(hidden_dims: tuple[int, ...], layer_norm: bool, orthogonal_init: bool) -> ValueNetwork:
    # One module object per configuration so every seed reuses one compiled fit (see state.adam).
    return ValueNetwork(hidden_dims, layer_norm, orthogonal_init)


def create_reference(
    key: jax.Array,
    obs_dim: int,
    hidden_dims: tuple[int, ...],
    learning_rate: float,
    discount: float,
    tau: float,
    layer_norm: bool = False,
    orthogonal_init: bool = True,
) -> ReferenceState:
    network = _network(tuple(hidden_dims), layer_norm, orthogonal_init)
    params = network.init(key, jnp.zeros((1, obs_dim), jnp.float32))
    return ReferenceState(
        value=TrainState.create(apply_fn=network.apply, params=params, tx=adam(learning_rate)),
        target_params=params,
        discount=discount,
        tau=tau,
    )


def value_loss(params, state: ReferenceState, batch: Transitions) -> tuple[jax.Array, Metrics]:
    """Mean squared TD(0) error of V against the target network's one-step backup."""
    next_value = state.value.apply_fn(state.target_params, batch.next_observations)
    target = batch.rewards + state.discount * (1.0 - batch.dones) * next_value
    value = state.value.apply_fn(params, batch.observations)
    loss = jnp.mean((value - jax.lax.stop_gradient(target)) ** 2)
    return loss, {"reference/td_loss": loss, "reference/value": value.mean()}


def return_loss(params, state: ReferenceState, batch: Transitions) -> tuple[jax.Array, Metrics]:
    """Mean squared error of V against the rows' Monte-Carlo returns (batch.reference)."""
    value = state.value.apply_fn(params, batch.observations)
    loss = jnp.mean((value - batch.reference) ** 2)
    return loss, {"reference/return_loss": loss, "reference/value": value.mean()}


def _step(loss_fn, state: ReferenceState, batch: Transitions) -> tuple[ReferenceState, Metrics]:
    (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.value.params, state, batch)
    value = state.value.apply_gradients(grads=grads)
    # The target follows in both fits; only the TD loss reads it.
    return state.replace(
        value=value, target_params=optax.incremental_update(value.params, state.target_params, state.tau)
    ), metrics


def fit_step(state: ReferenceState, batch: Transitions) -> tuple[ReferenceState, Metrics]:
    """One TD(0) step of V."""
    return _step(value_loss, state, batch)


def regression_step(state: ReferenceState, batch: Transitions) -> tuple[ReferenceState, Metrics]:
    """One Monte-Carlo regression step of V."""
    return _step(return_loss, state, batch)


@jax.jit
def fit(state: ReferenceState, batches: Transitions) -> tuple[ReferenceState, Metrics]:
    """Scan `fit_step` over the leading axis of `batches` (U, B, ...); returns the mean metrics."""
    state, metrics = jax.lax.scan(fit_step, state, batches)
    return state, jax.tree.map(jnp.mean, metrics)


@jax.jit
def fit_to_returns(state: ReferenceState, batches: Transitions) -> tuple[ReferenceState, Metrics]:
    """Scan `regression_step` over the leading axis of `batches` (U, B, ...); the mean metrics."""
    state, metrics = jax.lax.scan(regression_step, state, batches)
    return state, jax.tree.map(jnp.mean, metrics)


@jax.jit
def predict(state: ReferenceState, observations: jax.Array) -> jax.Array:
    """V(s) of the fitted network (not the target), (N, O) -> (N,)."""
    return state.value.apply_fn(state.value.params, observations)
