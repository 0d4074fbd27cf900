"""Frame and caption sampling against hand-computed cases (paper, Sec. 3)."""
import numpy as np
import pytest

from vtalign.extract.sampling import (
    caption_text,
    choose_captions,
    frame_indices,
    image_frame_indices,
    video_clip_indices,
)


@pytest.mark.parametrize("num_frames, n_f, expected", [
    (10, 4, [0, 3, 6, 9]),                # positions 0, 3, 6, 9
    (10, 3, [0, 5, 9]),                   # 0, 4.5 -> 5 (halves round up), 9
    (30, 8, [0, 4, 8, 12, 17, 21, 25, 29]),  # 29 j / 7 = 0, 4.14, 8.29, 12.43, 16.57, 20.71, 24.86, 29
    (3, 5, [0, 1, 1, 2, 2]),              # shorter video: 0, .5, 1, 1.5, 2 -> frames repeat
    (10, 1, [0]),                         # one frame = the first
    (1, 4, [0, 0, 0, 0]),
    (100, 2, [0, 99]),
])
def test_frame_indices_hand_computed(num_frames, n_f, expected):
    assert frame_indices(num_frames, n_f).tolist() == expected


def test_frame_indices_match_float_interpolation_away_from_halves():
    for T in (7, 16, 101, 300):
        for n in (2, 5, 8, 16, 48):
            pos = np.linspace(0, T - 1, n)
            frac = pos - np.floor(pos)
            safe = np.abs(frac - 0.5) > 1e-9
            assert (frame_indices(T, n)[safe] == np.floor(pos + 0.5).astype(int)[safe]).all()


def test_video_clips_multiples_and_short_requests():
    assert video_clip_indices(10, 4, 2).tolist() == [[0, 3], [6, 9]]
    assert video_clip_indices(10, 2, 4).tolist() == [[0, 0, 9, 9]]          # each frame fills n_o / n_f slots
    assert video_clip_indices(30, 1, 16).tolist() == [[0] * 16]
    clips = video_clip_indices(300, 48, 16)
    assert clips.shape == (3, 16) and (clips.ravel() == frame_indices(300, 48)).all()
    with pytest.raises(ValueError, match="not a multiple"):
        video_clip_indices(300, 24, 16)


def test_image_modes():
    assert image_frame_indices(30, 8, "image").tolist() == [0]
    assert image_frame_indices(30, 8, "video").tolist() == frame_indices(30, 8).tolist()
    with pytest.raises(ValueError, match="mode"):
        image_frame_indices(30, 8, "clip")


def test_bad_frame_requests():
    with pytest.raises(ValueError, match="at least one"):
        frame_indices(0, 4)
    with pytest.raises(ValueError, match="positive"):
        frame_indices(10, 0)


def test_caption_choice_is_seeded_nested_and_position_free():
    caps = [f"caption {i}" for i in range(10)]
    picks = [choose_captions(caps, n, seed=3, item_id="vid") for n in range(1, 11)]
    for a, b in zip(picks, picks[1:]):
        assert b[:len(a)] == a                       # n_c captions are a prefix of n_c + 1
    assert sorted(picks[-1]) == sorted(caps)        # all ten: a permutation
    assert choose_captions(caps, 3, 3, "vid") == picks[2]              # deterministic
    assert choose_captions(caps, 3, 4, "vid") != picks[2] or choose_captions(caps, 3, 5, "vid") != picks[2]
    assert caption_text(["  a b ", "c d"], 2, 0, "x") in ("a b c d", "c d a b")
    with pytest.raises(ValueError, match="has 2 captions"):
        choose_captions(["a", "b"], 3, 0, "x")
