"""report.html in a real headless browser (Chromium from the system packages; `.ci/run` installs it): a trained
tiny run's report renders with no console message, every image is embedded as a data: URI that decodes to a
real picture (the network is blocked, so nothing can load from elsewhere), and its screenshot is not blank."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from trainlab import config as config_mod
from trainlab.api import train_config

BROWSER = next((path for path in map(shutil.which, ("chromium", "chromium-browser")) if path), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="chromium is not installed (apt-get install -y chromium; "
                                                        ".ci/run installs it when it runs as root)")
# console output of the page, as chromium logs it with --enable-logging=stderr: `...:INFO:CONSOLE:12] "message"...`
CONSOLE = re.compile(r":CONSOLE[:(]\d*\)?\] (.*)")


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless chromium with its own profile and every host unresolvable (a page that fetches anything fails)."""
    command = [BROWSER, "--headless=new", "--disable-gpu", "--no-sandbox", "--no-first-run",
               f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND", "--enable-logging=stderr",
               "--v=0", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("browser")
    cfg = config_mod.load(flags={"epochs": 2, "out": tmp, "name": "tiny"},
                          overrides={"data.name": "circles", "data.n": 200, "model.name": "mlp", "model.hidden": [8],
                                     "callbacks.progress.style": "none"})
    path = train_config(cfg).path / "report.html"
    assert path.is_file()
    return path


def test_report_renders_without_console_messages_and_with_embedded_images(report: Path, tmp_path: Path) -> None:
    result = _chromium(tmp_path / "profile", "--dump-dom", report.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    console = [m.group(1) for m in map(CONSOLE.search, result.stderr.splitlines()) if m]
    assert console == []
    dom = result.stdout
    assert "<h1" in dom and "</html>" in dom  # the page was parsed and serialised by the browser
    sources = re.findall(r"<img[^>]*\ssrc=\"([^\"]*)\"", dom)
    assert len(sources) == report.read_text().count("<img") >= 1  # at least the training curves
    assert 'class="confusion"' in dom
    from PIL import Image

    for source in sources:
        head, _, data = source.partition(",")
        assert head == "data:image/png;base64", head[:60]
        picture = Image.open(io.BytesIO(base64.b64decode(data)))
        assert picture.width > 50 and picture.height > 50
    assert not re.search(r"<(?:script|link|iframe)[^>]*\s(?:src|href)=\"(?:https?:)?//", dom)


def test_report_screenshot_is_not_blank(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    result = _chromium(tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,1600",
                       "--hide-scrollbars", report.as_uri())
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    from PIL import Image, ImageStat

    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 1600)
    colors = image.getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 50  # text, table rules and the plots' colours, not one flat fill
    assert max(ImageStat.Stat(image).stddev) > 10
