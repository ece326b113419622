"""Why `bench/end_to_end.py`'s ai4med and MONAI masks differ: the way back to the input grid.

Reads a finished end_to_end run (its --work folder, same flags), re-runs the MONAI side's
network on the network grid in this process and reproduces both outputs with scipy:
- MONAI bundle-style (Invertd on probabilities, bilinear, then AsDiscreted argmax) ==
  probabilities resampled linearly onto the input grid, then argmax;
- ai4med infer == the argmax on the network grid, resampled nearest-neighbour onto the input grid.
With scans at 0.75 mm and the network at 1.5 mm (corner voxel centres aligned), every odd input
voxel lies exactly halfway between two network voxels, so the two conventions differ along
the mask boundary there; the networks' outputs themselves agree.

    .venv/bin/python bench/e2e_conventions.py --cases 2 --size 128 128 40 --train-iterations 20
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.end_to_end import SW_BATCH, TARGET_SPACING, UNET, WINDOW, dice  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    import nibabel as nib
    import torch
    from monai.data import DataLoader, Dataset
    from monai.inferers import SlidingWindowInferer
    from monai.networks.nets import UNet
    from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Orientationd, ScaleIntensityRanged, Spacingd
    from scipy import ndimage

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=8)
    p.add_argument("--size", type=int, nargs=3, default=[512, 512, 120])
    p.add_argument("--train-iterations", type=int, default=200)
    p.add_argument("--work", default=os.path.join(__import__("tempfile").gettempdir(), "ai4med_bench_e2e"))
    args = p.parse_args(argv)
    [data] = glob.glob(os.path.join(args.work, f"{args.cases}x{'x'.join(map(str, args.size))}_*"))
    [model] = glob.glob(os.path.join(data, f"unet_{args.train_iterations}it_*"))
    index = json.load(open(os.path.join(data, "data", "index.json")))
    roi = json.load(open(os.path.join(model, "mmar", "config", "config_inference.json")))["validate"]["inferer"][
        "args"]["roi_size"]
    net = UNet(**UNET)
    net.load_state_dict(torch.load(os.path.join(model, "models", "model.pt"), weights_only=True)["model"])
    net.eval()
    pre = Compose([LoadImaged("image"), EnsureChannelFirstd("image"), Orientationd("image", axcodes="RAS"),
                   Spacingd("image", pixdim=TARGET_SPACING, mode="bilinear"),
                   ScaleIntensityRanged("image", a_min=WINDOW[0], a_max=WINDOW[1], b_min=0.0, b_max=1.0, clip=True)])
    inferer = SlidingWindowInferer(roi, SW_BATCH)
    loader = DataLoader(Dataset([{"image": i["image"]} for i in index["items"]], pre))
    print(f"{'case':<10}{'MONAI vs linear-then-argmax':>29}{'ai4med vs nearest-of-argmax':>29}"
          f"{'ai4med vs MONAI':>17}{'disagreements at odd x/y':>26}")
    for item, batch in zip(index["items"], loader):
        with torch.no_grad():
            prob = torch.softmax(inferer(batch["image"], net), 1)[0].numpy()
        shape = nib.load(item["image"]).shape
        grid = np.meshgrid(*[np.arange(s) * a / b for s, a, b in zip(shape, index["spacing"], TARGET_SPACING)],
                           indexing="ij")
        linear = np.stack([ndimage.map_coordinates(c, grid, order=1, mode="nearest") for c in prob]).argmax(0)
        nearest = ndimage.map_coordinates(prob.argmax(0).astype(np.float32), grid, order=0, mode="nearest")
        n = item["name"]
        a = np.asarray(nib.load(os.path.join(model, "runs", "ai4med", n, f"{n}_model.nii.gz")).dataobj)
        m = np.asarray(nib.load(os.path.join(model, "runs", "monai", n, f"{n}_seg.nii.gz")).dataobj).squeeze()
        where = np.argwhere((a > 0) != (m > 0))
        odd = float(((where[:, 0] % 2) | (where[:, 1] % 2)).mean()) if len(where) else float("nan")
        print(f"{n:<10}{dice(m, linear):>29.5f}{dice(a, nearest):>29.5f}{dice(a, m):>17.5f}{odd:>25.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
