"""Huge numbers in params are 400s naming the field (issue 17 item 2); mask2polygon gives proper
polygons at any `more_points` (issue 13 item 6)."""

from __future__ import annotations

import http.client
import json

import numpy as np
import pytest
from aiaa_test_client import LIMIT
from aiaa_test_models import write_mask_volume, write_volume

from ai4med.server.errors import ApiError
from ai4med.server.points import int_list, parse_point_or_list, parse_points
from ai4med.server.polygons import area, parse_polygons, rasterize, slice_polygons

HUGE_INT = 10**400  # above float range: math.isfinite() raised OverflowError
U64 = 2**64  # np.isfinite() raised TypeError


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("bad_numbers")
    vol, mask = str(d / "v.nii.gz"), str(d / "m.nii.gz")
    write_volume(vol, shape=(24, 24, 16))
    write_mask_volume(mask)
    return {"vol": vol, "mask": mask}


def post(live, path: str, params_text: str, file: str, conn: http.client.HTTPConnection | None = None):
    payload = open(file, "rb").read()
    body = (f'--{LIMIT}\r\nContent-Disposition: form-data; name="params"\r\n\r\n{params_text}\r\n'
            f'--{LIMIT}\r\nContent-Disposition: form-data; name="datapoint"; filename="x.nii.gz"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode() + payload + f"\r\n--{LIMIT}--\r\n".encode()
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", live.port, timeout=60)
    conn.request("POST", path, body, {"Content-Type": f"multipart/form-data; boundary={LIMIT}"})
    r = conn.getresponse()
    data = r.read()
    if own:
        conn.close()
    return r.status, data


@pytest.mark.parametrize("value", [HUGE_INT, U64, -HUGE_INT])
def test_point_parsers_refuse_huge_ints_with_400(value):
    for call, name in [
        (lambda: parse_points([[value, 1, 1]], "points", (4, 4, 4)), "points[0]"),
        (lambda: parse_point_or_list([1, value, 1], "current_point", (4, 4, 4)), "current_point[0]"),
        (lambda: int_list([value, 2, 2], "spatial_size", 3), "spatial_size"),
        (lambda: parse_polygons([[[value, 1], [2, 2], [3, 1]]], 2), "poly[0][0]"),
    ]:
        with pytest.raises(ApiError) as e:
            call()
        assert e.value.status == 400 and name in e.value.message
        assert len(e.value.message) < 300  # the number is cut, not printed whole


def test_huge_ints_over_http_are_400_naming_the_field(live, files):
    vol, mask = files["vol"], files["mask"]
    big = str(U64)
    huge = str(HUGE_INT)
    poly2 = '[[[1, 1], [5, 1], [5, 5]]]'
    cases = [
        ("/v1/mask2polygon", f'{{"more_points": {big}}}', mask, "more_points"),
        ("/v1/mask2polygon", f'{{"more_points": {huge}}}', mask, "more_points"),
        ("/v1/dextr3d?model=annotation_ct_spleen", f'{{"points": [[{huge}, 1, 1], [1,1,1], [1,1,1], [1,1,1], '
                                                   '[1,1,1], [1,1,1]]}', vol, "points[0]"),
        ("/v1/deepgrow?model=clara_deepgrow_3d", f'{{"foreground": [[{huge}, 1, 1]]}}', vol, "foreground[0]"),
        ("/v1/deepgrow?model=clara_deepgrow_3d", f'{{"foreground": [[2, 2, 2]], "background": [[{big}, 1, 1]]}}',
         vol, "background[0]"),
        ("/v1/deepgrow?model=clara_deepgrow_3d", f'{{"foreground": [[2, 2, 2]], "current_point": [{huge}, 1, 1]}}',
         vol, "current_point[0]"),
        ("/v1/deepgrow?model=clara_deepgrow_3d", f'{{"foreground": [[2, 2, 2]], "spatial_size": [{huge}, 8, 8]}}',
         vol, "spatial_size"),
        ("/v1/fixpolygon", f'{{"dimension": {big}, "poly": {poly2}}}', mask, "dimension"),
        ("/v1/fixpolygon", f'{{"dimension": 2, "poly": {poly2}, "polygon_index": {big}, "vertex_index": 0}}',
         mask, "polygon_index"),
        ("/v1/fixpolygon", f'{{"dimension": 2, "poly": {poly2}, "polygon_index": 0, "vertex_index": {huge}}}',
         mask, "vertex_index"),
        ("/v1/fixpolygon", f'{{"dimension": 2, "poly": {poly2}, "polygon_index": 0, "vertex_index": 0, '
                           f'"vertex_offset": [{huge}, 0]}}', mask, "vertex_offset"),
        ("/v1/fixpolygon", f'{{"dimension": 2, "poly": [[[{big}, 1], [5, 1], [5, 5]]], "polygon_index": 0, '
                           '"vertex_index": 0}', mask, "poly[0][0]"),
        ("/v1/fixpolygon", f'{{"poly": [[[[1, 1], [5, 1], [5, 5]]]], "slice_index": 0, "polygon_index": 0, '
                           f'"vertex_index": 0, "propagate_neighbor_3d": {big}}}', mask, "propagate_neighbor_3d"),
    ]
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=60)
    for path, params, file, field in cases:
        status, data = post(live, path, params, file, conn)  # one keep-alive connection for all of them
        assert status == 400, (path, params[:80], status, data[:300])
        msg = json.loads(data)["error"]
        assert field in msg and len(msg) < 400, (path, msg)
    conn.close()


def test_mask2polygon_more_points_1_gives_proper_polygons():
    yy, xx = np.mgrid[:40, :40]
    mask = ((yy - 12) ** 2 + (xx - 12) ** 2 <= 25) | ((yy - 28) ** 2 + (xx - 28) ** 2 <= 49)
    mask[35, 5] = True  # a 1-pixel speckle
    mask[2, 30:33] = True  # a 1-pixel-wide line
    for more in (0, 1, 2, 10):
        polys = slice_polygons(mask, more)
        assert len(polys) == 2, (more, polys)  # the two disks; speckle and line enclose no area
        for poly in polys:
            assert len(poly) >= 3 and area(poly) > 0, (more, poly)
        filled = rasterize(polys, mask.shape).astype(bool)
        disks = int(mask.sum()) - 4
        # the polygons cover the disks: at least 70% even at the coarsest setting, all at 0 (every
        # boundary pixel kept), and stray outside them by at most the simplification's rounding
        inside, outside = int((filled & mask).sum()), int((filled & ~mask).sum())
        assert inside >= (disks if more == 0 else 0.7 * disks) and outside <= 0.05 * disks, (more, inside, outside)
    assert len(slice_polygons(mask, 1)[0]) == 4 and len(slice_polygons(mask, 10)[0]) > 4


def test_mask2polygon_endpoint_more_points_1(live, files):
    status, data = post(live, "/v1/mask2polygon", '{"more_points": 1}', files["mask"])
    assert status == 200, data[:300]
    slices = json.loads(data)
    n = 0
    for polys in slices:
        for poly in polys:
            assert len(poly) >= 3 and area(poly) > 0, poly
            n += 1
    assert n >= 3  # the mask's boxes on slices 1-3 (write_mask_volume)
