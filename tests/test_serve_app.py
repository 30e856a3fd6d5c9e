"""The `edgeseg serve` app in-process: every endpoint, every error, and what each response holds."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
pytest.importorskip("httpx", reason="httpx (FastAPI's TestClient) is not installed")

from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402
from serve_support import PALETTE, decode_png, encode, rgb, tiny_model  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from edgeseg.cli.main import app as cli_app  # noqa: E402
from edgeseg.errors import InputError  # noqa: E402
from edgeseg.runtime import Segmenter, load_rgb, overlay  # noqa: E402
from edgeseg.serve import create_app  # noqa: E402
from edgeseg.serve.responses import rle_decode, rle_encode  # noqa: E402


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve") / "tiny.onnx"
    tiny_model(path)
    return path


@pytest.fixture(scope="module")
def reference(model):
    return Segmenter(model, provider="cpu")


@pytest.fixture
def client(model):
    with TestClient(create_app(model, provider="cpu", max_wait_ms=1, max_upload_bytes=200_000)) as c:
        yield c


def post_png(client, img, fmt=None, **kwargs):
    url = "/v1/segment" + (f"?format={fmt}" if fmt else "")
    return client.post(url, content=encode(img), headers={"content-type": "image/png"}, **kwargs)


def error_of(response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == kind
    return response.json()["detail"]


def test_png_mask_equals_predict_and_carries_the_palette(client, reference):
    img = rgb(37, 52)
    r = post_png(client, img)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    mask = Image.open(io.BytesIO(r.content))
    assert mask.mode == "P" and mask.getpalette()[:12] == sum(PALETTE, [])
    assert np.array_equal(np.asarray(mask), reference.predict(img))
    assert r.headers["x-batch-size"] == "1" and float(r.headers["x-inference-ms"]) > 0
    assert r.headers["x-image-size"] == "52x37"


def test_multipart_upload_json_with_counts_and_rle(client, reference):
    img = rgb(23, 31, seed=4)
    r = client.post("/v1/segment?format=json", files={"file": ("street.png", encode(img), "image/png")})
    assert r.status_code == 200, r.text
    doc = r.json()
    expected = reference.predict(img)
    assert (doc["height"], doc["width"]) == expected.shape
    assert np.array_equal(rle_decode(doc["mask"]), expected)
    counts = np.bincount(expected.ravel(), minlength=4)
    assert {c["name"]: c["pixels"] for c in doc["classes"]} == {
        name: int(n) for name, n in zip("wxyz", counts, strict=True) if n
    }
    assert all(c["color"] == PALETTE[c["index"]] for c in doc["classes"])
    assert doc["batch_size"] == 1 and doc["inference_ms"] > 0


def test_overlay_is_the_runtime_overlay(client, reference):
    img = rgb(19, 26, seed=5)
    r = post_png(client, img, "overlay")
    assert r.status_code == 200
    expected = overlay(img, reference.predict(img), reference.palette, 0.5)
    assert np.array_equal(decode_png(r.content), expected)


def test_raw_octet_stream_and_jpeg_are_accepted(client, reference, tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(rgb(30, 20)).save(path, quality=90)
    raw = {"content-type": "application/octet-stream"}
    r = client.post("/v1/segment", content=path.read_bytes(), headers=raw)
    assert r.status_code == 200
    assert np.array_equal(decode_png(r.content), reference.predict(load_rgb(path)))


@pytest.mark.parametrize(
    "image",
    [
        Image.fromarray(rgb(14, 18)[..., 0], "L"),
        Image.fromarray(np.dstack([rgb(14, 18), np.full((14, 18), 7, np.uint8)]), "RGBA"),
        Image.fromarray(rgb(14, 18)[..., 0].astype(np.uint16) * 250),
    ],
    ids=["greyscale", "rgba", "16-bit"],
)
def test_image_modes_are_handled_as_predict_handles_files(client, reference, tmp_path, image):
    path = tmp_path / "in.png"
    image.save(path)
    r = client.post("/v1/segment", content=path.read_bytes(), headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    assert np.array_equal(decode_png(r.content), reference.predict(load_rgb(path)))


def test_exif_rotated_image_is_segmented_upright(client, reference, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 8  # displayed rotated 90° counter-clockwise
    path = tmp_path / "rotated.jpg"
    Image.fromarray(rgb(12, 28)).save(path, exif=exif)
    r = client.post("/v1/segment", files={"file": ("rotated.jpg", path.read_bytes(), "image/jpeg")})
    mask = decode_png(r.content)
    assert mask.shape == (28, 12)
    assert np.array_equal(mask, reference.predict(load_rgb(path)))


def test_bad_input_gets_4xx_json_naming_the_problem_and_the_server_keeps_serving(client):
    truncated = encode(rgb(40, 40))[:150]
    png = {"content-type": "image/png"}
    assert "not an image" in error_of(
        client.post("/v1/segment", content=b"GIF? no", headers=png), 400, "not_an_image"
    )
    assert "truncated" in error_of(
        client.post("/v1/segment", files={"file": ("cut.png", truncated, "image/png")}), 400, "not_an_image"
    )
    assert "cut.png" in client.post("/v1/segment", files={"file": ("cut.png", truncated, "image/png")}).text
    assert "empty" in error_of(
        client.post("/v1/segment", content=b"", headers={"content-type": "image/png"}), 400, "empty_upload"
    )
    assert "'text/plain'" in error_of(
        client.post("/v1/segment", content=b"hi", headers={"content-type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    text_file = {"file": ("notes.txt", b"hi", "text/plain")}
    assert "notes.txt" in error_of(client.post("/v1/segment", files=text_file), 415, "unsupported_media_type")
    no_file = {"field": (None, "x")}  # a multipart body with a text field only
    assert "no file" in error_of(client.post("/v1/segment", files=no_file), 400, "no_file")
    assert "'tiff'" in error_of(post_png(client, rgb(8, 8), "tiff"), 400, "bad_format")
    assert "200000 bytes" in error_of(
        client.post("/v1/segment", content=b"\0" * 200_001, headers={"content-type": "image/png"}),
        413,
        "upload_too_large",
    )
    assert post_png(client, rgb(9, 9)).status_code == 200


def test_upload_limit_holds_without_a_content_length(client):
    def chunks():
        for _ in range(30):
            yield b"\0" * 10_000

    r = client.post("/v1/segment", content=chunks(), headers={"content-type": "image/png"})
    error_of(r, 413, "upload_too_large")


def test_pixel_limit(model):
    with TestClient(create_app(model, provider="cpu", max_image_pixels=1000)) as c:
        detail = error_of(post_png(c, rgb(40, 26)), 413, "image_too_large")
        assert "40" in detail and "1000" in detail
        assert post_png(c, rgb(40, 25)).status_code == 200


def test_queue_full_is_503_with_retry_after(model):
    app = create_app(model, provider="cpu", max_queue=1, max_wait_ms=60_000, max_batch=8)
    with TestClient(app) as c:
        with app.state.batcher.arriving():  # a request on its way: the queued image waits for it
            waiting = app.state.batcher.submit(rgb(8, 8))
            r = post_png(c, rgb(8, 8))
            assert "limit 1" in error_of(r, 503, "queue_full")
            assert r.headers["retry-after"] == "1"
            assert "edgeseg_queue_depth 1.0" in c.get("/metrics").text
        assert waiting.result(timeout=10).batch_size == 1  # nobody left to wait for: it ran


def test_model_health_metrics_page_and_docs(client, reference):
    info = client.get("/v1/model").json()
    assert info["classes"] == ["w", "x", "y", "z"] and info["palette"] == PALETTE
    assert info["providers"] == reference.providers and info["provider"] == "cpu"
    assert info["input"]["dtype"] == "float32" and info["input"]["stride"] == 1
    assert info["limits"]["max_upload_bytes"] == 200_000 and info["metadata"]["output"] == "logits"
    assert client.get("/healthz").json()["status"] == "ok"
    post_png(client, rgb(10, 10))
    client.post("/v1/segment", content=b"x", headers={"content-type": "text/plain"})
    text = client.get("/metrics").text
    assert 'edgeseg_requests_total{endpoint="/v1/segment",status="200"} 1.0' in text
    assert 'edgeseg_requests_total{endpoint="/v1/segment",status="415"} 1.0' in text
    assert "edgeseg_batch_size_count 1.0" in text and "edgeseg_request_seconds_bucket" in text
    assert "edgeseg_in_flight 1.0" in text  # the /metrics request itself
    page = client.get("/")
    assert page.status_code == 200 and 'id="overlay"' in page.text and 'id="legend"' in page.text
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "multipart/form-data" in schema["paths"]["/v1/segment"]["post"]["requestBody"]["content"]


def test_app_mounts_under_a_prefix(model):
    parent = FastAPI()
    parent.mount("/seg", create_app(model, provider="cpu", max_wait_ms=1))
    with TestClient(parent) as c:
        assert post_png(c, rgb(6, 6)).status_code == 404
        r = c.post("/seg/v1/segment", content=encode(rgb(6, 6)), headers={"content-type": "image/png"})
        assert r.status_code == 200
        assert 'endpoint="/v1/segment",status="200"' in c.get("/seg/metrics").text


def test_settings_are_checked(model):
    with pytest.raises(InputError, match="max_batch"):
        create_app(model, max_batch=0)
    with pytest.raises(InputError, match="unknown serve setting"):
        create_app(model, max_bach=4)
    with pytest.raises(InputError, match="model not found"):
        create_app(model.with_name("missing.onnx"))


def test_rle_round_trip():
    labels = np.array([[0, 0, 1], [1, 1, 7]], dtype=np.uint8)
    rle = rle_encode(labels)
    assert rle["values"] == [0, 1, 7] and rle["counts"] == [2, 3, 1]
    assert np.array_equal(rle_decode(json.loads(json.dumps(rle))), labels)


def test_cli_refuses_bad_settings_before_serving(model):
    result = CliRunner().invoke(cli_app, ["serve", str(model), "--max-batch", "0"])
    assert isinstance(result.exception, InputError) and "max_batch" in str(result.exception)
    result = CliRunner().invoke(cli_app, ["serve", "--help"])
    assert result.exit_code == 0 and "--max-wait-ms" in result.output and "127.0.0.1" in result.output
