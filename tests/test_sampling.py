"""Tests of frame sampling: dense windows and views, Something-Something segments and views."""

from __future__ import annotations

import numpy as np
import pytest

from videomae.data.sampling import (
    dense_indices,
    dense_views,
    segment_indices,
    segment_views,
    window_span,
)

# ---------------------------------------------------------------------------------------- dense


def test_window_span() -> None:
    assert window_span(16, 4) == 61
    assert window_span(1, 8) == 1


def test_dense_views_evenly_spaced_from_first_to_last_window() -> None:
    # 100 frames, 4 every 4: span 13, slack 87; 3 views start at int(0), int(43.5), int(87)
    np.testing.assert_array_equal(
        dense_views(100, 4, 4, 3),
        [[0, 4, 8, 12], [43, 47, 51, 55], [87, 91, 95, 99]],
    )
    # 5 views of 16x4 over 300 frames: slack 239, step 59.75 -> starts 0, 59, 119, 179, 239
    views = dense_views(300, 16, 4, 5)
    assert views.shape == (5, 16) and views.dtype == np.int64
    np.testing.assert_array_equal(views[:, 0], [0, 59, 119, 179, 239])
    np.testing.assert_array_equal(views[-1], 239 + 4 * np.arange(16))
    assert views[-1, -1] == 299  # the last view ends at the last frame


def test_dense_one_view_is_the_centered_window() -> None:
    for n in (13, 40, 100, 301):
        np.testing.assert_array_equal(dense_views(n, 4, 4, 1)[0], dense_indices(n, 4, 4, None))
    np.testing.assert_array_equal(dense_views(100, 4, 4, 1), [[43, 47, 51, 55]])


def test_dense_views_short_video_repeat_the_clamped_clip() -> None:
    np.testing.assert_array_equal(dense_views(10, 4, 4, 2), [[0, 4, 8, 9], [0, 4, 8, 9]])
    np.testing.assert_array_equal(dense_views(1, 3, 2, 3), np.zeros((3, 3)))


def test_dense_random_starts_cover_every_valid_start() -> None:
    rng = np.random.default_rng(3)
    starts = {int(dense_indices(30, 4, 3, rng)[0]) for _ in range(2000)}
    assert starts == set(range(30 - 10 + 1))


# -------------------------------------------------------------------------------------- segments


def test_segment_test_offsets_match_hand_computation() -> None:
    # official _get_seq_frames: seg = (n - 1) / T; start_i = round(seg * i);
    # view k of V: start_i + int(seg / (V + 1) * (k + 1)), clamped to n - 1
    # n = 50, T = 8: seg = 6.125; starts round(0, 6.125, 12.25, 18.375, 24.5, 30.625, 36.75,
    # 42.875) = 0, 6, 12, 18, 24 (half to even), 31, 37, 43
    starts = np.array([0, 6, 12, 18, 24, 31, 37, 43])
    np.testing.assert_array_equal(segment_indices(50, 8, None), starts + 3)  # int(6.125 / 2)
    views = segment_views(50, 8, 2)  # offsets int(6.125/3 * 1) = 2, int(6.125/3 * 2) = 4
    np.testing.assert_array_equal(views, [starts + 2, starts + 4])
    assert views.shape == (2, 8) and views.dtype == np.int64
    np.testing.assert_array_equal(segment_views(50, 8, 1)[0], segment_indices(50, 8, None))


def test_segment_train_draws_within_each_segment() -> None:
    n, t = 50, 8
    seg = (n - 1) / t
    low = np.round(seg * np.arange(t)).astype(int)
    high = np.round(seg * np.arange(1, t + 1)).astype(int)
    rng = np.random.default_rng(0)
    draws = np.stack([segment_indices(n, t, rng) for _ in range(3000)])
    assert np.all(draws >= low) and np.all(draws <= np.minimum(high, n - 1))
    for i in range(t):  # every frame of the segment, both ends included, is drawn
        assert set(draws[:, i].tolist()) == set(range(low[i], min(high[i], n - 1) + 1))
    # seeded: the same generator state gives the same clip, drawn as rng.integers(low, high + 1)
    expected = np.random.default_rng(7).integers(low, high + 1)
    np.testing.assert_array_equal(segment_indices(n, t, np.random.default_rng(7)), expected)


def test_segment_short_video_rule() -> None:
    # 3 frames, 4 segments: seg 0.5, starts round(0, .5, 1, 1.5) = 0, 0, 1, 2; offset int(.25)=0
    np.testing.assert_array_equal(segment_indices(3, 4, None), [0, 0, 1, 2])
    rng = np.random.default_rng(1)
    for _ in range(100):
        out = segment_indices(3, 4, rng)
        assert np.all(np.diff(out) >= 0) and out.max() <= 2
    np.testing.assert_array_equal(segment_indices(1, 5, None), np.zeros(5))
    np.testing.assert_array_equal(segment_indices(1, 5, np.random.default_rng(0)), np.zeros(5))
    np.testing.assert_array_equal(segment_views(1, 2, 3), np.zeros((3, 2)))


# ------------------------------------------------------------------------------------ arguments


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: dense_views(0, 4, 4, 2), "num_video_frames"),
        (lambda: dense_views(10, 4, 4, 0), "num_views"),
        (lambda: dense_views(10, 4, 0, 2), "sampling_rate"),
        (lambda: segment_indices(10, 0, None), "num_segments"),
        (lambda: segment_indices(0, 4, None), "num_video_frames"),
        (lambda: segment_views(10, 4, 0), "num_views"),
        (lambda: dense_indices(10, 2.5, 1, None), "num_frames"),
    ],
)
def test_bad_arguments_are_named(call, name: str) -> None:
    with pytest.raises(ValueError, match=f"^{name} must be an integer >= 1"):
        call()
