"""The kiosk's page and scripts as a hall's browser loads them."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from confbridge.terminals import pages

STATIC = Path(pages.__file__).parent / "static"
IMPORTED = re.compile(r'from "/terminal/(\w+)\.js"')


def test_kiosk_scripts_are_served_and_nothing_else(client: TestClient) -> None:
    for script in pages.KIOSK_SCRIPTS:
        response = client.get(f"/terminal/{script}.js")
        assert response.status_code == 200, script
        assert response.headers["content-type"].startswith("text/javascript")
        assert response.content == (STATIC / f"{script}.js").read_bytes()
    for name in ("kiosk.css", "..%2Fpages", "missing", "KIOSK"):
        assert client.get(f"/terminal/{name}.js").status_code == 404, name


def test_every_module_a_kiosk_script_imports_is_served() -> None:
    imported = {
        module
        for script in pages.KIOSK_SCRIPTS
        for module in IMPORTED.findall((STATIC / f"{script}.js").read_text())
    }
    assert imported <= set(pages.KIOSK_SCRIPTS), imported - set(pages.KIOSK_SCRIPTS)
    on_disk = {path.stem for path in STATIC.glob("*.js")}
    assert on_disk == set(pages.KIOSK_SCRIPTS), on_disk ^ set(pages.KIOSK_SCRIPTS)
