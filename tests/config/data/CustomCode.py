# ruff: noqa
# Seed 002's BYOC examples (Clara Train "Bring your own components"), copied verbatim;
# only the whitespace flattened by the documentation page has been restored.
import numpy as np
# note the ai4med here
from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.transforms.multi_field_transformer import MultiFieldTransformer


class MyAddRandomConstant(MultiFieldTransformer):
    def __init__(self, fields, magnitude, dtype=np.float32):
        # fields specifies the names of the image fields in the data dict that you want to add constant to
        MultiFieldTransformer.__init__(self, fields)
        self.dtype = dtype
        self.magnitude = magnitude

    def transform(self, transform_ctx):
        for field in self.fields:
            offset = (np.random.rand() * 2.0 - 1.0) * self.magnitude
            # get the MedicalImage using field
            img = transform_ctx.get_image(field)
            # get_data give us a numpy array of data
            result = img.get_data() + offset
            # create a new MedicalImage use new_image() method
            # which will carry over the properties of the original image
            result_img = img.new_image(result, img.get_shape_format())
            # set the image back in transform_ctx
            transform_ctx.set_image(field, result_img)
        return transform_ctx

    def is_deterministic(self):
        """ This is not a deterministic transform.

        Returns:
            False (bool)
        """
        return False


import numpy as np
import logging
from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.common.shape_format import ShapeFormat
from ai4med.common.transform_ctx import TransformContext
from ai4med.utils.dtype_utils import str_to_dtype
from ai4med.components.transforms.multi_field_transformer import MultiFieldTransformer


class MyNumpyReader(object):
    """Reads Numpy files.

    Args:
        dtype: Type for data to be loaded.
    """
    def __init__(self, dtype=np.float32):
        self._logger = logging.getLogger(self.__class__.__name__)
        self._dtype = dtype

    def read(self, file_name, shape: ShapeFormat):
        assert shape, "Please provide a valid shape."
        assert file_name, "Please provide a filename."

        if isinstance(file_name, (bytes, bytearray)):
            file_name = file_name.decode('UTF-8')

        data = np.load(file_name, allow_pickle=True).astype(self._dtype)

        assert len(data.shape) == shape.get_number_of_dims(), \
            "Dims of loaded data and provided shape don't match."

        img = MedicalImage(data, shape)
        img.set_property(ImageProperty.ORIGINAL_SHAPE, data.shape)
        img.set_property(ImageProperty.FILENAME, file_name)

        return img


class MyNumpyLoader(MultiFieldTransformer):
    """Load Image from Numpy files.

    Args:
        shape (ShapeFormat): Shape of output image.
        dtype : Type for output data.
    """
    def __init__(self, fields, shape, dtype="float32"):
        MultiFieldTransformer.__init__(self, fields=fields)
        self._dtype = str_to_dtype(dtype)
        self._shape = ShapeFormat(shape)
        self._reader = MyNumpyReader(self._dtype)

    def transform(self, transform_ctx: TransformContext):
        for field in self.fields:
            file_name = transform_ctx[field]
            transform_ctx.set_image(field, self._reader.read(file_name, self._shape))

        return transform_ctx


import numpy as np
from ai4med.components.metric import Metric
from ai4med.libs.metrics.metric_list import MetricList


class SampleMetricAverage(MetricList):
    """
    Generic class for tracking averages of metrics. Expects that the elements in self._list
    are scalar values that will be averaged
    """
    def __init__(self, name, invalid_value=float('nan'), report_path=None):
        MetricList.__init__(self, name, invalid_value=invalid_value, report_path=report_path)

    def get(self):
        if self._list is None or self._list.size == 0:
            return 0
        return np.mean(self._list)


class SampleComputeAverage(Metric):
    def __init__(self, name, field, invalid_value=float('nan'), report_path=None,
                 do_summary=True, do_print=True, is_key_metric=False):
        m = SampleMetricAverage(name, invalid_value, report_path)
        Metric.__init__(self, m, field=field, do_summary=do_summary, do_print=do_print,
                        is_key_metric=is_key_metric)
