"""ROS-free conversions with rosbags' message classes: image decoding (raw and
compressed, malformed inputs rejected with a reason), stamps, SceneGraph and
Vocabulary building, result validation."""

from __future__ import annotations

import array
import dataclasses
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage
from ros_fixtures import classes, compressed_msg, header, image_msg, make_result, random_rgb

from tr2_core.scene_graph import check_result
from tr2_core.vocab import FAMILIES, OBJECT_CLASSES, PREDICATES
from tr2_ros.conversions import (
    ENCODINGS,
    ImageRejected,
    ResultRejected,
    build_scene_graph,
    build_vocabulary,
    decode_compressed_image,
    decode_image,
    encode_rgb_image,
    ns_to_stamp,
    stamp_to_ns,
)
from tr2_ros.messages import make_typestore

# --------------------------------------------------------------------------
# Raw images.


def expected_rgb(rgb: np.ndarray, encoding: str) -> np.ndarray:
    if encoding == "mono8":
        return np.repeat(rgb[..., :1], 3, axis=2)
    return rgb


@pytest.mark.parametrize("pad", [0, 3, 64])
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_decode_every_encoding_with_row_padding(encoding, pad):
    rgb = random_rgb(7, 5, seed=pad)
    out = decode_image(image_msg(rgb, encoding, pad=pad))
    assert out.dtype == np.uint8 and out.shape == (7, 5, 3)
    np.testing.assert_array_equal(out, expected_rgb(rgb, encoding))


def test_bgr_is_really_swapped():
    rgb = np.zeros((1, 2, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)  # red pixel
    msg = image_msg(rgb, "bgr8")
    assert msg.data[:3].tolist() == [0, 0, 255]  # stored as B, G, R
    assert decode_image(msg)[0, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize(
    "as_data",
    [
        lambda a: a,  # rosbags: numpy
        lambda a: a.tobytes(),  # rclpy may hold bytes
        lambda a: array.array("B", a.tobytes()),  # rclpy: array.array('B')
        lambda a: a.tolist(),  # a user-built list
        lambda a: bytearray(a.tobytes()),
    ],
    ids=["numpy", "bytes", "array", "list", "bytearray"],
)
def test_decode_accepts_every_data_container(as_data):
    rgb = random_rgb(4, 3)
    ref = image_msg(rgb, "bgra8", pad=2)
    msg = image_msg(rgb, "bgra8", pad=2, data=as_data(ref.data))
    np.testing.assert_array_equal(decode_image(msg), rgb)


def test_decoded_image_owns_its_memory():
    rgb = random_rgb(3, 4)
    msg = image_msg(rgb, "rgb8")
    before = msg.data.copy()
    out = decode_image(msg)
    assert out.flags.c_contiguous and out.flags.writeable and out.flags.owndata
    out[:] = 0
    np.testing.assert_array_equal(msg.data, before)


def test_decode_after_cdr_round_trip_read_only_buffer():
    ts = make_typestore("humble")
    rgb = random_rgb(5, 6)
    msg = image_msg(rgb, "bgr8", pad=4)
    back = ts.deserialize_cdr(ts.serialize_cdr(msg, msg.__msgtype__), msg.__msgtype__)
    assert not back.data.flags.writeable
    np.testing.assert_array_equal(decode_image(back), rgb)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (dict(height=0), "zero-size"),
        (dict(width=0), "zero-size"),
        (dict(step=14), "step 14 is smaller than a row"),  # 5 px * 3 = 15
        (dict(encoding="16UC1"), "unsupported encoding '16UC1'"),
        (dict(encoding="bayer_rggb8"), "unsupported encoding 'bayer_rggb8'"),
        (dict(encoding=""), "unsupported encoding ''"),
        (dict(encoding="RGB8"), "unsupported encoding 'RGB8'"),
        (dict(height=100_000, width=100_000), "exceeds the limit"),
    ],
)
def test_malformed_headers_are_rejected_with_reason(fields, reason):
    msg = image_msg(random_rgb(4, 5), "rgb8", **fields)
    with pytest.raises(ImageRejected, match=reason):
        decode_image(msg)


def test_truncated_and_overlong_data_rejected():
    rgb = random_rgb(4, 5)
    full = image_msg(rgb, "rgb8", pad=1).data
    with pytest.raises(ImageRejected, match=r"data truncated: 63 bytes, expected .* = 64"):
        decode_image(image_msg(rgb, "rgb8", pad=1, data=full[:-1]))
    with pytest.raises(ImageRejected, match="data too long"):
        decode_image(image_msg(rgb, "rgb8", pad=1, data=np.concatenate([full, full[:1]])))
    with pytest.raises(ImageRejected, match="truncated"):
        decode_image(image_msg(rgb, "rgb8", data=np.zeros(0, np.uint8)))


def test_non_byte_data_rejected():
    rgb = random_rgb(2, 2)
    with pytest.raises(ImageRejected, match="dtype float32"):
        decode_image(image_msg(rgb, data=np.zeros(12, np.float32)))
    with pytest.raises(ImageRejected, match="bytes 0..255"):
        decode_image(image_msg(rgb, data=[300] * 12))


def test_fallback_decoder_for_other_encodings():
    rgb = random_rgb(4, 5)
    seen = []

    def fallback(msg):
        seen.append(msg.encoding)
        return rgb

    msg = image_msg(rgb, "rgb8", encoding="bayer_rggb8")
    np.testing.assert_array_equal(decode_image(msg, fallback=fallback), rgb)
    assert seen == ["bayer_rggb8"]
    # supported encodings never go to the fallback
    decode_image(image_msg(rgb, "bgr8"), fallback=fallback)
    assert seen == ["bayer_rggb8"]


def test_fallback_failures_become_rejections():
    msg = image_msg(random_rgb(4, 5), "rgb8", encoding="16UC1")

    def broken(_msg):
        raise RuntimeError("cv_bridge: no conversion")

    with pytest.raises(ImageRejected, match="cannot convert encoding '16UC1' to rgb8: cv_bridge"):
        decode_image(msg, fallback=broken)
    with pytest.raises(ImageRejected, match=r"gave uint16 \(4, 5\)"):
        decode_image(msg, fallback=lambda m: np.zeros((4, 5), np.uint16))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    height=st.integers(-2, 9),
    width=st.integers(-2, 9),
    encoding=st.sampled_from([*ENCODINGS, "16UC1", "yuv422", "8UC3"]),
    step=st.integers(-1, 40),
    size=st.integers(0, 400),
)
def test_fuzzed_raw_images_decode_or_are_rejected(height, width, encoding, step, size):
    msg = classes().Image(
        header=header(),
        height=max(height, 0),
        width=max(width, 0),
        encoding=encoding,
        is_bigendian=0,
        step=max(step, 0),
        data=np.arange(size, dtype=np.uint8),
    )
    try:
        out = decode_image(msg)
    except ImageRejected as e:
        assert str(e)
    else:
        assert out.shape == (height, width, 3) and out.dtype == np.uint8


# --------------------------------------------------------------------------
# Compressed images.


def _encoded(array_: np.ndarray, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(array_).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def test_png_decodes_exactly():
    rgb = random_rgb(9, 11)
    out = decode_compressed_image(compressed_msg(_encoded(rgb, "PNG"), "png"))
    np.testing.assert_array_equal(out, rgb)
    assert out.flags.writeable and out.flags.c_contiguous


def test_jpeg_decodes_close_to_the_original():
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[:, :24] = (200, 30, 40)
    rgb[:, 24:] = (20, 160, 220)
    out = decode_compressed_image(
        compressed_msg(_encoded(rgb, "JPEG", quality=95), "rgb8; jpeg compressed bgr8")
    )
    assert out.shape == (32, 48, 3)
    assert np.abs(out.astype(int) - rgb).mean() < 4  # colours not swapped


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_compressed_grey_alpha_palette_become_rgb(mode):
    rgb = random_rgb(5, 6)
    img = PILImage.fromarray(rgb).convert(mode)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    out = decode_compressed_image(compressed_msg(buf.getvalue(), "png"))
    np.testing.assert_array_equal(out, np.asarray(img.convert("RGB")))


def test_compressed_malformed_rejected():
    jpeg = _encoded(random_rgb(64, 64), "JPEG")
    with pytest.raises(ImageRejected, match="cannot decode CompressedImage"):
        decode_compressed_image(compressed_msg(jpeg[: len(jpeg) // 2], "jpeg"))
    with pytest.raises(ImageRejected, match="cannot decode CompressedImage"):
        decode_compressed_image(compressed_msg(b"definitely not an image", "jpeg"))
    with pytest.raises(ImageRejected, match="has no data"):
        decode_compressed_image(compressed_msg(b"", "png"))
    depth16 = _encoded(np.full((4, 4), 1000, np.uint16), "PNG")
    with pytest.raises(ImageRejected, match="mode 'I;16'|mode 'I'"):
        decode_compressed_image(compressed_msg(depth16, "png"))
    with pytest.raises(ImageRejected, match="depth image"):
        decode_compressed_image(compressed_msg(depth16, "16UC1; compressedDepth png"))


def test_compressed_huge_rejected_before_decoding():
    png = _encoded(np.zeros((20, 30, 3), np.uint8), "PNG")
    with pytest.raises(ImageRejected, match="exceeds the limit of 100 pixels"):
        decode_compressed_image(compressed_msg(png, "png"), max_pixels=100)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 200))
def test_fuzzed_compressed_images_decode_or_are_rejected(noise, cut):
    png = _encoded(random_rgb(4, 4), "PNG")
    payload = png[:cut] + noise if cut else noise
    try:
        out = decode_compressed_image(compressed_msg(payload, "png"))
    except ImageRejected:
        pass
    else:
        assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8


def test_debug_image_encoding_round_trips():
    rgb = random_rgb(6, 7)
    h = header()
    msg = encode_rgb_image(rgb, h, classes())
    assert (msg.encoding, msg.step, msg.header) == ("rgb8", 21, h)
    np.testing.assert_array_equal(decode_image(msg), rgb)


# --------------------------------------------------------------------------
# Stamps.


@given(st.integers(-(2**31) * 10**9, (2**31 - 1) * 10**9 + 999_999_999))
def test_stamp_round_trip(ns):
    stamp = ns_to_stamp(ns, classes())
    assert 0 <= stamp.nanosec < 10**9
    assert stamp_to_ns(stamp) == ns


def test_stamp_out_of_range():
    with pytest.raises(ResultRejected, match="int32 seconds"):
        ns_to_stamp(2**31 * 10**9, classes())


# --------------------------------------------------------------------------
# Scene graphs.


def test_build_scene_graph_fields():
    c = classes()
    result = make_result(5, seed=3)
    h = header(7, 9, "cam")
    msg = build_scene_graph(
        result, h, c, image_width=64, image_height=48, relation_threshold=0.5,
        dropped_frames=4, rejected_frames=2,
    )  # fmt: skip
    assert msg.header is h  # copied from the image, untouched
    assert (msg.image_width, msg.image_height) == (64, 48)
    assert (msg.dropped_frames, msg.rejected_frames) == (4, 2)
    assert [n.id for n in msg.nodes] == list(range(5))
    assert [n.track_id for n in msg.nodes] == result.entity_track.tolist()
    assert [n.label_id for n in msg.nodes] == result.entity_labels.tolist()
    assert [n.label for n in msg.nodes] == [OBJECT_CLASSES[i] for i in result.entity_labels]
    assert msg.nodes[0].label == "person"
    np.testing.assert_array_equal(np.stack([n.box_xyxy for n in msg.nodes]), result.entity_boxes)
    np.testing.assert_allclose([n.score for n in msg.nodes], result.entity_scores)
    assert [(e.subject_id, e.object_id) for e in msg.edges] == list(
        zip(result.pair_subject.tolist(), result.pair_object.tolist(), strict=True)
    )
    assert [stamp_to_ns(t) for t in msg.window_stamps] == result.window_stamps_ns.tolist()
    assert stamp_to_ns(msg.window_stamps[-1]) == result.stamp_ns


def test_predicate_scores_per_family():
    c = classes()
    result = make_result(4, seed=5)
    threshold = 0.4
    msg = build_scene_graph(
        result, header(), c, image_width=64, image_height=48, relation_threshold=threshold
    )
    for family in FAMILIES:
        scores = getattr(result, family.name)
        for k, edge in enumerate(msg.edges):
            ps = getattr(edge, family.name)
            assert ps.family == family.name
            assert ps.first_predicate_id == family.start
            np.testing.assert_array_equal(ps.scores, scores[k])
            top = int(np.argmax(scores[k]))
            assert ps.top_predicate_id == family.start + top
            assert ps.top_predicate == PREDICATES[family.start + top]
            assert ps.top_score == pytest.approx(scores[k, top])
            ids = ps.predicate_ids.tolist()
            assert ps.predicates == [PREDICATES[i] for i in ids]
            if family.multi_label:
                expected = set((np.flatnonzero(scores[k] >= threshold) + family.start).tolist())
                assert set(ids) == expected
                ranked = [scores[k, i - family.start] for i in ids]
                assert ranked == sorted(ranked, reverse=True)  # best first
            else:
                assert ids == [family.start + top]


def test_threshold_boundary_and_extremes():
    c = classes()
    base = make_result(2, seed=1)
    contacting = np.zeros_like(base.contacting)
    contacting[0, [2, 5]] = 0.5  # exactly at the threshold: holds
    contacting[0, 7] = 0.4999
    result = dataclasses.replace(base, contacting=contacting)
    msg = build_scene_graph(
        result, header(), c, image_width=64, image_height=48, relation_threshold=0.5
    )
    cont = msg.edges[0].contacting
    assert sorted(cont.predicate_ids.tolist()) == [CONTACT + 2, CONTACT + 5]
    msg = build_scene_graph(
        result, header(), c, image_width=64, image_height=48, relation_threshold=1.0
    )
    assert msg.edges[0].contacting.predicates == []
    assert msg.edges[0].spatial.predicate_ids.size == 0


CONTACT = FAMILIES[2].start


def test_empty_result_builds_an_empty_graph():
    c = classes()
    result = make_result(1, 0)
    msg = build_scene_graph(result, header(), c, image_width=10, image_height=10)
    assert len(msg.nodes) == 1 and msg.edges == []
    ts = make_typestore("humble")
    back = ts.deserialize_cdr(ts.serialize_cdr(msg, "tr2/msg/SceneGraph"), "tr2/msg/SceneGraph")
    assert back.nodes[0].label == "person" and back.edges == []


def test_built_graph_serialises():
    ts = make_typestore("jazzy")
    from tr2_ros.messages import rosbags_classes

    c = rosbags_classes(ts)
    result = make_result(6, 9, seed=2)
    msg = build_scene_graph(result, c.Header(stamp=c.Time(sec=1, nanosec=2), frame_id="f"), c,
                            image_width=64, image_height=48)  # fmt: skip
    back = ts.deserialize_cdr(ts.serialize_cdr(msg, "tr2/msg/SceneGraph"), "tr2/msg/SceneGraph")
    assert len(back.edges) == 9
    np.testing.assert_array_equal(back.edges[8].contacting.scores, result.contacting[8])
    assert back.header.frame_id == "f"


def _with_row_nan(r):
    boxes = r.entity_boxes.copy()
    boxes[2] = np.nan
    return dataclasses.replace(r, entity_boxes=boxes)


def _with(**changes):
    return lambda r: dataclasses.replace(r, **changes)


BROKEN_RESULTS = {
    r"entity_boxes has 4 NaN/inf values in rows \[2\]": _with_row_nan,
    "entity_scores has 1 NaN/inf": _with(entity_scores=np.array([1, np.inf, 1, 1], np.float32)),
    "contacting has 51 NaN": lambda r: dataclasses.replace(
        r, contacting=np.full_like(r.contacting, np.nan)
    ),
    r"entity_labels outside 1..36 in rows \[1\]": _with(entity_labels=np.array([1, 0, 2, 3])),
    r"entity_labels outside 1..36 in rows \[1, 3\]": _with(entity_labels=np.array([1, 37, 2, 99])),
    "pair_object points outside the 4 entities": _with(pair_object=np.array([1, 2, 4])),
    "pair_subject points outside": _with(pair_subject=np.array([-1, 0, 0])),
    r"attention has shape \(3, 4\)": _with(attention=np.zeros((3, 4), np.float32)),
    "entity_boxes has shape": _with(entity_boxes=np.zeros((4, 5), np.float32)),
    "entity_labels has shape": _with(entity_labels=np.array([1, 2, 3])),
    "entity_track has dtype kind 'f'": _with(entity_track=np.zeros(4, np.float32)),
    "window_stamps_ns has shape": _with(window_stamps_ns=np.zeros((2, 2), np.int64)),
    r"window_stamps_ns has shape \(0,\)": _with(window_stamps_ns=np.zeros(0, np.int64)),
    "must be oldest first and end with the frame's stamp 12000000345": _with(
        window_stamps_ns=np.array([12_000_000_345, 11_000_000_000])
    ),
    "end with the frame's stamp": _with(window_stamps_ns=np.array([1, 2])),
}


@pytest.mark.parametrize("reason", list(BROKEN_RESULTS))
def test_malformed_results_rejected_with_reason(reason):
    broken = BROKEN_RESULTS[reason](make_result(4, seed=0))
    with pytest.raises(ResultRejected, match=reason):
        build_scene_graph(broken, header(), classes(), image_width=64, image_height=48)


def test_valid_result_passes_validation():
    check_result(make_result(4, seed=0))
    check_result(make_result(1, 0))


def test_vocabulary_message():
    v = build_vocabulary(classes())
    assert v.object_classes == list(OBJECT_CLASSES)
    assert v.predicates == list(PREDICATES)
    assert v.family_names == [f.name for f in FAMILIES]
    for f, first, size in zip(FAMILIES, v.family_first_predicate_id, v.family_size, strict=True):
        assert v.predicates[first : first + size] == list(f.predicates)
