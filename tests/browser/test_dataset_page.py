"""The dataset page in a real Chromium: how the upload was read, and the type select offering
``image`` only where it can work."""

from __future__ import annotations

import gzip

from tests.browser.conftest import ARTIFACTS, log_in
from tests.digits_images import indexed_zip
from tests.live import Client, breast_cancer_csv


def options(page, column: str) -> list[str]:
    return page.locator(f'select[aria-label="{column} type"] option').evaluate_all(
        "options => options.map(o => o.value)"
    )


def wait_for_message(page, text: str) -> str:
    page.wait_for_function("text => document.querySelector('#message').textContent.includes(text)", arg=text)
    return page.locator("#message").inner_text()


def test_an_image_dataset_offers_image_and_refuses_a_column_of_labels(studio, page):
    client = Client(studio.base)
    project = client.call("POST", "/api/projects/", json={"name": "images"})["id"]
    dataset = client.upload(project, "digits.zip", indexed_zip(30), name="digits")

    log_in(page, studio, f"/projects/{project}/datasets/{dataset['id']}/")
    source = page.locator("#dataset-source").inner_text()
    assert source == "Read as ZIP of 30 images · index index.csv (CSV · UTF-8 · delimiter ',')"
    assert options(page, "file") == ["numeric", "categorical", "text", "date", "image"]
    assert page.locator('select[aria-label="file type"]').input_value() == "image"
    assert "image" in options(page, "digit")

    page.select_option('select[aria-label="digit type"]', "image")
    message = wait_for_message(page, "cannot be an image")
    assert message == (
        "Column 'digit' cannot be an image: 10 of its values name no file in the image folder of "
        "dataset 'digits', such as 'd0', 'd1', 'd2'."
    )
    assert page.locator('select[aria-label="digit type"]').input_value() == "categorical"

    page.select_option('select[aria-label="file type"]', "categorical")
    wait_for_message(page, "Column file is now categorical.")
    page.select_option('select[aria-label="file type"]', "image")
    wait_for_message(page, "Column file is now image.")
    columns = {c["name"]: c["type"] for c in client.call("GET", f"/api/datasets/{dataset['id']}/")["columns"]}
    assert columns == {"file": "image", "digit": "categorical"}
    page.screenshot(path=str(ARTIFACTS / "browser-dataset-image-types.png"), full_page=True)


def test_a_csv_dataset_shows_how_it_was_read_and_offers_no_image(studio, page):
    client = Client(studio.base)
    project = client.call("POST", "/api/projects/", json={"name": "csv"})["id"]
    content = gzip.compress(breast_cancer_csv().decode().replace(",", ";").encode("utf-8-sig"))
    dataset = client.upload(project, "cancer.csv.gz", content, name="cancer")

    log_in(page, studio, f"/projects/{project}/datasets/{dataset['id']}/")
    assert page.locator("#dataset-source").inner_text() == "Read as CSV · UTF-8 (BOM) · delimiter ';' · gzip"
    assert options(page, "target") == ["numeric", "categorical", "text", "date"]
    assert options(page, "mean radius") == ["numeric", "categorical", "text", "date"]
