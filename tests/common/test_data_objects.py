"""The seed data objects behave as seed 002 documents them."""

import numpy as np
import pytest

from ai4med.common.build_ctx import BuildContext
from ai4med.common.constants import ImageProperty
from ai4med.common.graph_component import GraphComponent
from ai4med.common.medical_image import MedicalImage
from ai4med.common.shape_format import ShapeFormat
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.metric import Metric
from ai4med.components.transforms.multi_field_transformer import MultiFieldTransformer
from ai4med.components.transforms.transformer import Transformer
from ai4med.libs.metrics.metric_list import MetricList
from ai4med.utils.dtype_utils import str_to_dtype

ALL_FORMATS = ["DHW", "DHWC", "CDHW", "NDHW", "NDHWC", "NCDHW", "HW", "HWC", "CHW", "NHW", "NHWC", "NCHW"]


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_shape_format_axes(fmt):
    sf = ShapeFormat(fmt)
    assert sf.get_number_of_dims() == len(fmt)
    assert sf.get_channel_axis() == fmt.find("C")
    assert sf.get_batch_axis() == fmt.find("N")
    assert sf.get_spatial_axes() == tuple(i for i, c in enumerate(fmt) if c in "DHW")
    assert sf.is_3d() == ("D" in fmt)
    assert getattr(ShapeFormat, fmt) == fmt
    assert ShapeFormat(sf) == sf == fmt


def test_shape_format_rejects_unknown_and_derives():
    with pytest.raises(ValueError, match="unknown shape format 'DWH'"):
        ShapeFormat("DWH")
    assert ShapeFormat("DHW").with_channel() == "CDHW"
    assert ShapeFormat("NHW").with_channel(first=False) == "NHWC"
    assert ShapeFormat("NCDHW").without_batch() == "CDHW"
    assert ShapeFormat("CDHW").is_channels_first() and ShapeFormat("DHWC").is_channels_last()


def test_medical_image_new_image_carries_independent_properties():
    affine = np.diag([1.0, 2.0, 3.0, 1.0])
    img = MedicalImage(np.zeros((2, 3, 4), np.float32), "DHW")
    img.set_property(ImageProperty.AFFINE, affine)
    img.set_property(ImageProperty.FILENAME, "a.nii")
    out = img.new_image(np.ones((1, 2, 3, 4)), ShapeFormat("CDHW"))
    assert out.get_shape_format() == "CDHW" and out.shape == (1, 2, 3, 4)
    assert out.get_property(ImageProperty.FILENAME) == "a.nii"
    out.get_property(ImageProperty.AFFINE)[0, 0] = 9.0
    assert img.get_property(ImageProperty.AFFINE)[0, 0] == 1.0
    assert img.get_property("missing", 5) == 5


def test_medical_image_rejects_mismatched_dims():
    with pytest.raises(ValueError, match="3 dimensions .* CDHW needs 4"):
        MedicalImage(np.zeros((2, 3, 4)), "CDHW")


def test_transform_context_dict_and_images():
    ctx = TransformContext({"image": "a.nii", "label": 3})
    assert ctx["image"] == "a.nii" and dict(ctx) == {"image": "a.nii", "label": 3}
    with pytest.raises(TypeError, match="field 'image' holds str, not a MedicalImage"):
        ctx.get_image("image")
    with pytest.raises(KeyError, match="no field 'mask'"):
        ctx.get_image("mask")
    img = MedicalImage(np.arange(8).reshape(2, 2, 2), "DHW")
    ctx.set_image("image", img)
    assert ctx.get_image("image") is img
    assert TransformContext() == {}


def test_transform_context_rng_is_injected_and_history_recorded():
    a = TransformContext({}, rng=np.random.default_rng(7)).get_rng().random(3)
    b = TransformContext({}, rng=np.random.default_rng(7)).get_rng().random(3)
    np.testing.assert_array_equal(a, b)
    ctx = TransformContext()
    ctx.record("Flip", {"axis": 1})
    copy = ctx.copy()
    assert isinstance(copy, TransformContext) and copy.history == [("Flip", {"axis": 1})]


def test_build_context_must_get_names_missing_key():
    ctx = BuildContext()
    ctx.set(BuildContext.KEY_IS_TRAIN, True)
    assert ctx.must_get("is_train") is True
    with pytest.raises(KeyError, match="BuildContext has no 'model_input'; available keys: \\['is_train'\\]"):
        ctx.must_get(BuildContext.KEY_MODEL_INPUT)
    for key in ("KEY_MODEL_INPUT", "KEY_LABEL_INPUT", "KEY_IS_TRAIN", "KEY_DATA_PROP", "KEY_LEARNING_RATE"):
        assert isinstance(getattr(BuildContext, key), str)


def test_graph_component_and_transformer_bases():
    with pytest.raises(NotImplementedError):
        GraphComponent().build(BuildContext())
    assert Transformer("image").is_deterministic() is True
    t = MultiFieldTransformer("image")
    assert t.fields == ["image"] and t.is_deterministic()
    assert MultiFieldTransformer(["image", "label"]).fields == ["image", "label"]
    with pytest.raises(ValueError, match="fields must be"):
        MultiFieldTransformer([])


def test_metric_list_and_metric_reports(tmp_path):
    ml = MetricList("dice", report_path=str(tmp_path))
    assert ml.get() == 0
    ml.update([0.5, 1.0], label="case0")
    ml.update([0.7, 0.0], label="case1")
    ml.update(None, label="case2")
    assert ml.get_values().shape == (3, 2) and np.isnan(ml.get_values()[2]).all()
    assert ml.get() == pytest.approx(0.55)
    metric = Metric(MetricList("acc"), field="accuracy", is_key_metric=True)
    for v in (0.2, 0.4, float("nan")):
        metric.update(v)
    assert metric.get() == pytest.approx(0.3)
    assert metric.is_key_metric() and metric.get_name() == "acc" and metric.get_field() == "accuracy"
    ml2 = MetricList("d", report_path=str(tmp_path))
    ml2.update(0.25, "a")
    ml2.update(0.75, "b")
    raw, summary = ml2.write_reports()
    assert open(raw).read() == "a\t0.250000\nb\t0.750000\n"
    assert open(summary).read() == "d\t0.500000\n"


def test_str_to_dtype():
    assert str_to_dtype("float32") is np.float32
    assert str_to_dtype("uint8") is np.uint8
    assert str_to_dtype(np.int16) is np.int16
    with pytest.raises(ValueError, match="unknown dtype 'float33'"):
        str_to_dtype("float33")
