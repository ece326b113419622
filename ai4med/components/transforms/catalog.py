"""The transform registry: every built-in transform by its seed name.

Entries are lazy `"module:attr"` strings (see `ai4med.config.registry`); the config
engine also accepts the 2019 spelling `transforms.<Name>`.
"""

from ai4med.config.registry import Registry

_P = "ai4med.components.transforms"

REGISTRY = Registry(
    "transforms",
    {
        # io
        "LoadNifty": f"{_P}.io:LoadNifty",
        "LoadNifti": f"{_P}.io:LoadNifti",
        "LoadNumpyFromFilename": f"{_P}.io:LoadNumpyFromFilename",
        "LoadPng": f"{_P}.io:LoadPng",
        "LoadJpg": f"{_P}.io:LoadJpg",
        "LoadImageMasksFromNumpy": f"{_P}.io:LoadImageMasksFromNumpy",
        "LoadResolutionFromNifty": f"{_P}.io:LoadResolutionFromNifty",
        "Load3DShapeFromNumpy": f"{_P}.io:Load3DShapeFromNumpy",
        "WriteNiftyResults": f"{_P}.io:WriteNiftyResults",
        "SaveAsNifti": f"{_P}.io:SaveAsNifti",
        # channels
        "VolumeTo4dArray": f"{_P}.channels:VolumeTo4dArray",
        "ConvertToChannelsFirst": f"{_P}.channels:ConvertToChannelsFirst",
        "NPExpandDims": f"{_P}.channels:NPExpandDims",
        "NPRepChannels": f"{_P}.channels:NPRepChannels",
        "RepeatChannel": f"{_P}.channels:RepeatChannel",
        "SplitAcrossChannels": f"{_P}.channels:SplitAcrossChannels",
        "MergeBatchDims": f"{_P}.channels:MergeBatchDims",
        "CopyProperties": f"{_P}.channels:CopyProperties",
        # intensity
        "ScaleIntensityRange": f"{_P}.intensity:ScaleIntensityRange",
        "ScaleIntensityOscillation": f"{_P}.intensity:ScaleIntensityOscillation",
        "AdjustContrast": f"{_P}.intensity:AdjustContrast",
        "AddGaussianNoise": f"{_P}.intensity:AddGaussianNoise",
        "CenterData": f"{_P}.intensity:CenterData",
        "NormalizeNonzeroIntensities": f"{_P}.intensity:NormalizeNonzeroIntensities",
        "ScaleShiftIntensity": f"{_P}.intensity:ScaleShiftIntensity",
        "RandomGaussianSmooth": f"{_P}.intensity:RandomGaussianSmooth",
        "RandomMRBiasField": f"{_P}.intensity:RandomMRBiasField",
        "ScaleIntensityPercentiles": f"{_P}.intensity:ScaleIntensityPercentiles",
        # spatial
        "ResampleVolume": f"{_P}.spatial:ResampleVolume",
        "ScaleByResolution": f"{_P}.spatial:ScaleByResolution",
        "ScaleBySpacing": f"{_P}.spatial:ScaleBySpacing",
        "ScaleByFactor": f"{_P}.spatial:ScaleByFactor",
        "ScaleToShape": f"{_P}.spatial:ScaleToShape",
        "RestoreOriginalShape": f"{_P}.spatial:RestoreOriginalShape",
        "NPResizeImage": f"{_P}.spatial:NPResizeImage",
        "NP2DRotate": f"{_P}.spatial:NP2DRotate",
        "NPRandomFlip3D": f"{_P}.spatial:NPRandomFlip3D",
        "NPRandomZoom3D": f"{_P}.spatial:NPRandomZoom3D",
        "NPRandomRot90_XY": f"{_P}.spatial:NPRandomRot90_XY",
        "FlipAxisRandom": f"{_P}.spatial:FlipAxisRandom",
        "RandomZoom": f"{_P}.spatial:RandomZoom",
        "RandomAxisFlip": f"{_P}.spatial:RandomAxisFlip",
        "RandomSpatialFlip": f"{_P}.spatial:RandomSpatialFlip",
        "RandomRotate2D": f"{_P}.spatial:RandomRotate2D",
        "RandomRotate3D": f"{_P}.spatial:RandomRotate3D",
        "SymmetricPadderDiv": f"{_P}.spatial:SymmetricPadderDiv",
        # crop
        "CropSubVolumePosNegRatioCtrlEpoch": f"{_P}.crop:CropSubVolumePosNegRatioCtrlEpoch",
        "TransformVolumeCropROIFastPosNegRatio": f"{_P}.crop:TransformVolumeCropROIFastPosNegRatio",
        "CropRandomSubImageInRange": f"{_P}.crop:CropRandomSubImageInRange",
        "CropForegroundObject": f"{_P}.crop:CropForegroundObject",
        "CropSubVolumeRandomWithinBounds": f"{_P}.crop:CropSubVolumeRandomWithinBounds",
        "CropSubVolumeCenter": f"{_P}.crop:CropSubVolumeCenter",
        "FastPosNegRatioCropROI": f"{_P}.crop:FastPosNegRatioCropROI",
        "CropByPosNegRatio": f"{_P}.crop:CropByPosNegRatio",
        "FastCropByPosNegRatio": f"{_P}.crop:FastCropByPosNegRatio",
        "CropByPosNegRatioLabelOnly": f"{_P}.crop:CropByPosNegRatioLabelOnly",
        "CropFixedSizeRandomCenter": f"{_P}.crop:CropFixedSizeRandomCenter",
        "CropRandomSizeWithDisplacement": f"{_P}.crop:CropRandomSizeWithDisplacement",
        "CropImageForeground": f"{_P}.crop:CropImageForeground",
        # guidance
        "AddExtremePointsChannel": f"{_P}.guidance:AddExtremePointsChannel",
        "FetchExtremePoints": f"{_P}.guidance:FetchExtremePoints",
        # post
        "BratsConvertLabels": f"{_P}.post:BratsConvertLabels",
        "SplitBasedOnLabel": f"{_P}.post:SplitBasedOnLabel",
        "SplitBasedOnBratsClasses": f"{_P}.post:SplitBasedOnBratsClasses",
        "ConvertToMultiChannelBasedOnBratsClasses": f"{_P}.post:ConvertToMultiChannelBasedOnBratsClasses",
        "ConvertToMultiChannelBasedOnLabel": f"{_P}.post:ConvertToMultiChannelBasedOnLabel",
        "ThresholdValues": f"{_P}.post:ThresholdValues",
        "ArgmaxAcrossChannels": f"{_P}.post:ArgmaxAcrossChannels",
        "KeepLargestCC": f"{_P}.post:KeepLargestCC",
        "SegmentationPostProcess": f"{_P}.restore:SegmentationPostProcess",
    },
)
