"""Host-side data path: online buffer, episode returns, mixed sampler."""

import numpy as np
import pytest

from calql.data.replay import OnlineBuffer, episode_transitions, offline_transitions, sample_stack
from calql.data.returns import ReturnRule
from calql.data.transitions import Transitions


def _constant_data(n: int, marker: float) -> Transitions:
    return Transitions(
        np.full((n, 3), marker, np.float32),
        np.zeros((n, 2), np.float32),
        np.full(n, marker, np.float32),
        np.full((n, 3), marker, np.float32),
        np.zeros(n, np.float32),
        np.zeros(n, np.float32),
    )


@pytest.mark.parametrize("mixing_ratio, expected_offline", [(0.5, 128), (0.25, 64), (1.0, 256), (0.0, 0)])
def test_mixed_sampler_respects_the_mixing_ratio(mixing_ratio, expected_offline):
    offline = _constant_data(1000, 0.0)
    online = OnlineBuffer(100, 3, 2)
    online.add(_constant_data(40, 1.0))
    batches = sample_stack(np.random.default_rng(0), offline, online, 5, 256, mixing_ratio)
    assert batches.observations.shape == (5, 256, 3) and batches.rewards.shape == (5, 256)
    np.testing.assert_array_equal((batches.rewards == 0.0).sum(axis=1), expected_offline)


def test_sampler_uses_only_offline_data_without_online_transitions():
    batches = sample_stack(np.random.default_rng(0), _constant_data(10, 0.0), OnlineBuffer(10, 3, 2), 2, 8, 0.5)
    assert batches.rewards.shape == (2, 8) and np.all(batches.rewards == 0.0)


def test_sampler_draws_only_stored_online_rows():
    online = OnlineBuffer(1000, 3, 2)
    online.add(_constant_data(3, 1.0))
    batches = sample_stack(np.random.default_rng(1), _constant_data(10, 0.0), online, 50, 8, 0.5)
    assert np.all(batches.rewards[:, 4:] == 1.0)  # never the zero-filled unused capacity


def test_online_buffer_appends_whole_episodes_and_refuses_overflow():
    buffer = OnlineBuffer(5, 3, 2)
    buffer.add(_constant_data(3, 1.0))
    buffer.add(_constant_data(2, 2.0))
    np.testing.assert_array_equal(buffer.data.rewards, [1, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="online buffer full"):
        buffer.add(_constant_data(1, 3.0))


def test_episode_transitions_compute_returns_of_the_whole_episode():
    obs = np.arange(4, dtype=np.float32)[:, None]
    successful = episode_transitions(
        obs[:3], np.zeros((3, 1)), np.array([-5.0, -5.0, 5.0]), obs[1:], True, ReturnRule(0.9, -5.0)
    )
    np.testing.assert_array_equal(successful.dones, [0, 0, 1])
    np.testing.assert_allclose(successful.reference, [-5 + 0.9 * (-5 + 0.9 * 5), -5 + 0.9 * 5, 5], rtol=1e-6)
    failed = episode_transitions(obs[:3], np.zeros((3, 1)), np.full(3, -5.0), obs[1:], False, ReturnRule(0.9, -5.0))
    np.testing.assert_array_equal(failed.dones, [0, 0, 0])  # a time-out is not done
    np.testing.assert_allclose(failed.reference, -50.0, rtol=1e-6)


def test_offline_transitions_clip_actions_and_compute_returns():
    obs = np.arange(4, dtype=np.float32)[:, None]
    data = offline_transitions(
        obs,
        np.array([[1.0], [-1.0], [0.5], [0.2]]),
        np.ones(4),
        obs + 1,
        np.array([0, 1, 0, 0]),
        np.array([0, 0, 0, 1]),
        ReturnRule(0.5),
    )
    assert data.actions.max() < 1.0 and data.actions.min() > -1.0 and data.actions.dtype == np.float32
    np.testing.assert_allclose(data.reference, [1.5, 1.0, 1.5, 1.0])


def test_online_kitchen_episode_gets_the_infinite_tail_unless_it_terminates():
    obs = np.arange(4, dtype=np.float32)[:, None]
    rule = ReturnRule(0.9, infinite_tail=True)
    timed_out = episode_transitions(obs[:3], np.zeros((3, 1)), np.array([0.0, 1.0, 1.0]), obs[1:], False, rule)
    tail = 1.0 + 0.9 * 1.0 / 0.1
    np.testing.assert_allclose(timed_out.reference, [0.9 * (1 + 0.9 * tail), 1 + 0.9 * tail, tail], rtol=1e-6)
    finished = episode_transitions(obs[:3], np.zeros((3, 1)), np.array([0.0, 1.0, 4.0]), obs[1:], True, rule)
    np.testing.assert_allclose(finished.reference, [0.9 * (1 + 0.9 * 4), 1 + 0.9 * 4, 4], rtol=1e-6)
