import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tr2_core.stream.tracker import IoUTracker, box_iou


def test_box_iou_hand_values():
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0]])


def test_ids_follow_moving_boxes_and_respect_class():
    tracker = IoUTracker(iou_threshold=0.3)
    first = tracker.update([[0, 0, 10, 10], [50, 50, 60, 60]], [1, 11])
    second = tracker.update([[52, 50, 62, 60], [1, 0, 11, 10]], [11, 1])
    assert list(second) == [first[1], first[0]]
    # Same place, different class: a new track.
    third = tracker.update([[1, 0, 11, 10]], [5])
    assert third[0] not in set(first)


def test_two_same_class_objects_keep_separate_ids():
    tracker = IoUTracker()
    a = tracker.update([[0, 0, 10, 10], [12, 0, 22, 10]], [11, 11])
    b = tracker.update([[13, 0, 23, 10], [1, 0, 11, 10]], [11, 11])
    assert list(b) == [a[1], a[0]]


def test_tracks_expire_after_max_age():
    tracker = IoUTracker(max_age=1)
    a = tracker.update([[0, 0, 10, 10]], [1])
    tracker.update(np.zeros((0, 4)), np.zeros(0))
    tracker.update(np.zeros((0, 4)), np.zeros(0))
    b = tracker.update([[0, 0, 10, 10]], [1])
    assert b[0] != a[0]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 200)), min_size=1, max_size=8))
def test_ids_unique_within_a_frame(corners):
    boxes = np.array([[x, y, x + 30, y + 30] for x, y in corners], float)
    labels = np.ones(len(boxes), np.int64)
    tracker = IoUTracker()
    for shift in (0, 3, 6):
        ids = tracker.update(boxes + shift, labels)
        assert len(set(ids.tolist())) == len(ids)
