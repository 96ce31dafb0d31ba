"""Pixel observations: uint8 frames stored once through datasets, replay and sampling; the encoder
in front of the critics (its gradients come from the critic loss only); random-shift augmentation."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from calql.agent.acting import deterministic_action
from calql.agent.pixels import pixel_networks, random_shift
from calql.agent.state import PixelAgentState, new_agent
from calql.agent.update import _actor_loss, _critic_loss, _td_target, update
from calql.config import AgentConfig
from calql.data.frames import FrameStacks, continuation_breaks, dedup_frames
from calql.data.replay import FrameBuffer, episode_transitions, gather, new_buffer, offline_transitions, sample_stack
from calql.data.returns import ReturnRule
from calql.data.transitions import Transitions
from calql.envs.common import StackFrames
from calql.training.rollout import run_episode

SIZE = 16
TINY = AgentConfig(
    critic_hidden_dims=(8,),
    policy_hidden_dims=(8,),
    encoder_channels=(4, 4),
    encoder_strides=(2, 1),
    encoder_features=6,
    num_sampled_actions=2,
)
RULE = ReturnRule(0.99)


def _frames(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, SIZE, SIZE, 3), dtype=np.uint8)


def _flat_episodes(lengths: list[int]) -> dict[str, np.ndarray]:
    """Flat single-frame data of consecutive episodes: each episode's L + 1 frames, shifted by one."""
    observations, next_observations = [], []
    for index, length in enumerate(lengths):
        frames = _frames(length + 1, seed=index)
        observations.append(frames[:-1])
        next_observations.append(frames[1:])
    n = sum(lengths)
    timeouts = np.zeros(n, bool)
    timeouts[np.cumsum(lengths) - 1] = True
    return {
        "observations": np.concatenate(observations),
        "next_observations": np.concatenate(next_observations),
        "actions": np.zeros((n, 2), np.float32),
        "rewards": np.arange(n, dtype=np.float32),
        "terminals": np.zeros(n, bool),
        "timeouts": timeouts,
    }


def _offline(lengths: list[int], stack: int = 1) -> tuple[dict, Transitions]:
    data = _flat_episodes(lengths)
    fields = [data[key] for key in ("observations", "actions", "rewards", "next_observations", "terminals")]
    return data, offline_transitions(*fields, data["timeouts"], RULE, stack=stack)


# ----- storage -----


def test_offline_images_stay_uint8_with_each_frame_stored_once():
    data, offline = _offline([3, 4, 2])
    assert isinstance(offline.observations, FrameStacks) and offline.observations.frames.dtype == np.uint8
    assert offline.observations.frames is offline.next_observations.frames  # one array for both views
    assert len(offline.observations.frames) == 9 + 3  # N transitions + one last frame per episode
    rows = np.arange(9)
    np.testing.assert_array_equal(offline.observations[rows], data["observations"])
    np.testing.assert_array_equal(offline.next_observations[rows], data["next_observations"])
    batch = gather(offline, np.array([[0, 8], [4, 5]]))
    assert batch.observations.shape == (2, 2, SIZE, SIZE, 3) and batch.observations.dtype == np.uint8


def test_frame_stacks_repeat_the_first_frame_of_each_episode():
    frames = _frames(6)
    breaks = np.array([False, False, True, False, True])  # episodes of 3 and 2 steps: frames 0-3 and 4-6
    observations = frames[[0, 1, 2, 4, 5]]
    next_observations = np.stack([frames[1], frames[2], frames[3], frames[5], _frames(1, 9)[0]])
    stacked, next_stacked = dedup_frames(observations, next_observations, breaks, stack=2)
    np.testing.assert_array_equal(stacked.rows, [[0, 0], [0, 1], [1, 2], [4, 4], [4, 5]])
    np.testing.assert_array_equal(next_stacked.rows, [[0, 1], [1, 2], [2, 3], [4, 5], [5, 6]])
    assert stacked.shape == (5, SIZE, SIZE, 6)
    np.testing.assert_array_equal(stacked[np.array([1])][0], np.concatenate([frames[0], frames[1]], axis=-1))


def test_continuation_breaks_find_episode_ends_from_the_frames():
    data = _flat_episodes([3, 2])
    np.testing.assert_array_equal(
        continuation_breaks(data["observations"], data["next_observations"]), [False, False, True, False, True]
    )


def test_frame_buffer_keeps_episodes_grows_and_round_trips_through_its_arrays():
    buffer = FrameBuffer(capacity=3000, frame_shape=(SIZE, SIZE, 3), stack=1, action_dim=2)
    episodes = []
    for seed, length in enumerate([700, 500]):  # 1,202 frames: the 1,024-frame array has to grow
        frames = _frames(length + 1, seed)
        episode = episode_transitions(
            frames[:-1], np.zeros((length, 2)), np.ones(length), frames[1:], terminated=bool(seed), rule=RULE
        )
        buffer.add(episode)
        episodes.append(frames)
    assert buffer.size == 1200 and buffer.num_frames == 1202 and buffer.frames.dtype == np.uint8
    np.testing.assert_array_equal(buffer.data.observations[np.array([700])][0], episodes[1][0])
    np.testing.assert_array_equal(buffer.data.next_observations[np.array([699])][0], episodes[0][-1])
    copy = FrameBuffer(capacity=3000, frame_shape=(SIZE, SIZE, 3), stack=1, action_dim=2)
    copy.restore(buffer.arrays())
    rows = np.arange(1200)
    for original, restored in zip(gather(buffer.data, rows), gather(copy.data, rows)):
        np.testing.assert_array_equal(original, restored)
    assert copy.dones[1199] == 1.0 and copy.dones[699] == 0.0


def test_stacked_episode_observations_must_follow_the_stacking_rule():
    frames = _frames(4)
    stacked = np.concatenate([frames[[0, 0, 1, 2]], frames[[0, 1, 2, 3]]], axis=-1)  # (4, H, W, 6)
    episode = episode_transitions(stacked[:-1], np.zeros((3, 2)), np.zeros(3), stacked[1:], False, RULE, stack=2)
    np.testing.assert_array_equal(episode.observations[np.arange(3)], stacked[:-1])
    with pytest.raises(ValueError, match="frame-stacking rule"):
        episode_transitions(stacked[::-1][:-1], np.zeros((3, 2)), np.zeros(3), stacked[::-1][1:], False, RULE, stack=2)


def test_mixed_batches_of_offline_and_online_images_are_uint8():
    _, offline = _offline([5, 5])
    online = new_buffer(100, offline)
    assert isinstance(online, FrameBuffer)
    frames = _frames(4, seed=7)
    online.add(episode_transitions(frames[:-1], np.zeros((3, 2)), np.full(3, -1.0), frames[1:], False, RULE))
    batches = sample_stack(np.random.default_rng(0), offline, online, 3, 8, 0.5)
    assert batches.observations.shape == (3, 8, SIZE, SIZE, 3) and batches.observations.dtype == np.uint8
    assert batches.next_observations.dtype == np.uint8
    assert np.all(batches.rewards[:, 4:] == -1.0) and np.all(batches.rewards[:, :4] >= 0.0)


# ----- encoder and augmentation -----


def _agent(config: AgentConfig = TINY) -> PixelAgentState:
    agent = new_agent("calql", jax.random.PRNGKey(0), (SIZE, SIZE, 3), 2, config)
    assert isinstance(agent, PixelAgentState)
    return agent


def _batch(count: int = 4, seed: int = 0) -> Transitions:
    rng = np.random.default_rng(seed)
    return Transitions(
        jnp.asarray(_frames(count, seed)),
        jnp.asarray(rng.uniform(-0.9, 0.9, (count, 2)), jnp.float32),
        jnp.asarray(rng.normal(size=count), jnp.float32),
        jnp.asarray(_frames(count, seed + 1)),
        jnp.zeros(count),
        jnp.asarray(rng.normal(size=count), jnp.float32),
    )


def _norms(tree) -> list[float]:
    return [float(jnp.abs(leaf).sum()) for leaf in jax.tree.leaves(tree)]


def test_the_critic_loss_trains_the_encoder_and_the_actor_loss_does_not_reach_it():
    agent, batch = _agent(), _batch()
    networks = pixel_networks(TINY, 2)
    view = agent.replace(
        actor=agent.actor.replace(apply_fn=networks.policy_heads),
        critic=agent.critic.replace(apply_fn=networks.critic_heads),
    )
    next_features = networks.encode(agent.critic.params["encoder"], batch.next_observations)
    features_batch = batch._replace(next_observations=next_features)
    target = _td_target(view, features_batch, jax.random.PRNGKey(1))
    keys = list(jax.random.split(jax.random.PRNGKey(2), 3))
    critic_grads = jax.grad(lambda p: _critic_loss(p, view, features_batch, target, keys, networks_encode)[0])(
        agent.critic.params
    )
    assert min(_norms(critic_grads["encoder"])) > 0.0  # every encoder parameter learns from the critic loss
    # The actor on images, as it acts: the encoder copy's gradient is exactly zero (stop_gradient).
    actor_grads = jax.grad(lambda p: _actor_loss(p, agent, batch.observations, jax.random.PRNGKey(3))[0])(
        agent.actor.params
    )
    assert max(_norms(actor_grads["encoder"])) == 0.0 and min(_norms(actor_grads["heads"])) > 0.0


def networks_encode(params, images):
    return pixel_networks(TINY, 2).encode(params["encoder"], images)


def test_an_update_moves_the_encoder_only_through_the_critic_and_refreshes_the_actor_copy():
    agent, batch = _agent(), _batch()
    stack = jax.tree.map(lambda x: x[None], batch)
    trained, _ = update(agent, stack, jnp.ones(1, bool))
    assert _changed(agent.critic.params["encoder"], trained.critic.params["encoder"])
    assert not _changed(trained.critic.params["encoder"], trained.actor.params["encoder"])
    # With the critics' learning rate 0, only the actor loss could move the encoder: it stays.
    frozen = _agent(AgentConfig(**{**TINY.__dict__, "critic_lr": 0.0}))
    after, _ = update(frozen, stack, jnp.ones(1, bool))
    assert not _changed(frozen.critic.params["encoder"], after.critic.params["encoder"])
    assert _changed(frozen.actor.params["heads"], after.actor.params["heads"])


def test_padded_pixel_steps_leave_the_agent_as_it_was_and_count_for_nothing():
    """Pixel steps are unrolled and an inactive one's result dropped by a select (no conditional):
    two active steps then two padding steps end where two active steps alone end."""
    agent = _agent()
    batches = [_batch(seed=seed) for seed in range(4)]
    stack = jax.tree.map(lambda *rows: jnp.stack(rows), *batches)
    padded, padded_metrics = update(agent, stack, jnp.array([True, True, False, False]))
    two = jax.tree.map(lambda x: x[:2], stack)
    active, active_metrics = update(agent, two, jnp.ones(2, bool))
    for a, b in zip(jax.tree.leaves(padded), jax.tree.leaves(active), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    for key, value in active_metrics.items():
        np.testing.assert_allclose(float(padded_metrics[key]), float(value), rtol=1e-5, atol=1e-6)


def _changed(before, after) -> bool:
    return any(bool(jnp.any(a != b)) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)))


def test_random_shift_keeps_shape_and_dtype_and_crops_the_padded_image():
    images = jnp.asarray(_frames(8))
    shifted = random_shift(jax.random.PRNGKey(0), images, 2)
    assert shifted.shape == images.shape and shifted.dtype == jnp.uint8
    padded = np.pad(np.asarray(images), ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
    for image, crop in zip(padded, np.asarray(shifted)):
        assert any(np.array_equal(image[dy : dy + SIZE, dx : dx + SIZE], crop) for dy in range(5) for dx in range(5))
    assert not np.array_equal(np.asarray(shifted), np.asarray(images))  # 8 images, 25 offsets: some move
    np.testing.assert_array_equal(random_shift(jax.random.PRNGKey(0), images, 0), images)


def test_augmentation_shapes_training_only_and_is_off_with_no_augment_and_at_evaluation():
    batch = jax.tree.map(lambda x: x[None], _batch())
    shifted, _ = update(_agent(), batch, jnp.ones(1, bool))
    plain, _ = update(_agent(AgentConfig(**{**TINY.__dict__, "augment": False})), batch, jnp.ones(1, bool))
    assert _changed(shifted.critic.params, plain.critic.params)
    # Acting takes no key: the evaluation action is the policy's mean at the unshifted image.
    agent, images = _agent(), _batch().observations
    networks = pixel_networks(TINY, 2)
    features = networks.encode(agent.critic.params["encoder"], images)
    mean, _ = networks.policy.apply(agent.actor.params["heads"], features)
    np.testing.assert_allclose(deterministic_action(agent.actor, images), jnp.tanh(mean), rtol=1e-6, atol=1e-6)


def test_pixel_agents_refuse_the_learners_without_an_encoder():
    with pytest.raises(ValueError, match="image observations"):
        new_agent("iql", jax.random.PRNGKey(0), (SIZE, SIZE, 3), 2, TINY)


class _CountingFrames(gym.Env):
    """Frame t is filled with the value t; episodes last 4 steps."""

    observation_space = gym.spaces.Box(0, 255, (SIZE, SIZE, 1), np.uint8)
    action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return np.zeros((SIZE, SIZE, 1), np.uint8), {}

    def step(self, action):
        self.t += 1
        return np.full((SIZE, SIZE, 1), self.t, np.uint8), 0.0, False, self.t == 4, {}


def test_the_frame_stacking_wrapper_follows_the_rule_the_buffer_stores_by():
    env = StackFrames(_CountingFrames(), 3)
    assert env.observation_space.shape == (SIZE, SIZE, 3) and env.get_wrapper_attr("frame_shape") == (SIZE, SIZE, 1)
    episode = run_episode(env, lambda observation: np.zeros(2, np.float32))
    np.testing.assert_array_equal(episode.observations[:, 0, 0], [[0, 0, 0], [0, 0, 1], [0, 1, 2], [1, 2, 3]])
    stored = episode_transitions(
        episode.observations, episode.actions, episode.rewards, episode.next_observations, False, RULE, stack=3
    )
    assert len(stored.observations.frames) == 5  # each frame once, not three times
    np.testing.assert_array_equal(stored.next_observations[np.arange(4)], episode.next_observations)
