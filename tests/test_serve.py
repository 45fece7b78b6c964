"""The service (asr/serve.py): its API in-process against the tiny checkpoint, each error and the
service still answering after it, and its page in a real headless chromium."""

import json
import os
import random
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import soundfile as sf

from tests.conftest import write_noise_utterance

ON_CI = os.environ.get("CI") == "true"


def need(module: str):
    """`module` imported; skipped without it, but under CI (which installs it) a failure."""
    if ON_CI:
        return __import__(module)
    return pytest.importorskip(module)


need("fastapi")
need("httpx2")  # what starlette.testclient sends requests with

from fastapi.testclient import TestClient  # noqa: E402

from asr import serve  # noqa: E402
from asr.commands import decode  # noqa: E402
from asr.transcribe import Transcriber  # noqa: E402


@pytest.fixture(scope="module")
def tone_wav(tmp_path_factory) -> Path:
    """An utterance of the tones the tiny model learned, as the RIFF WAV a browser can decode too."""
    folder = tmp_path_factory.mktemp("serve-audio")
    write_noise_utterance(folder, "tones", random.Random(5))
    samples, rate = sf.read(folder / "tones.WAV", dtype="int16")
    path = folder / "tones.wav"
    sf.write(path, samples, rate, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def spoken_wav(tmp_path_factory) -> Path:
    """A sentence synthesized by flite (8 kHz: the service resamples it as decode.py does)."""
    if shutil.which("flite") is None:
        if ON_CI:
            pytest.fail("flite is missing: install.sh installs it")
        pytest.skip("needs flite (Debian package flite; install.sh installs it)")
    path = tmp_path_factory.mktemp("serve-speech") / "spoken.wav"
    subprocess.run(["flite", "-t", "she had your dark suit", "-o", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def transcriber(tiny_checkpoint):
    return Transcriber.from_checkpoint(tiny_checkpoint)


def client_for(transcriber, **settings) -> TestClient:
    """A client of a service around the already loaded `transcriber` (so each test may set its own limits)."""
    return TestClient(serve.create_app(serve.Service(transcriber, "tiny", **settings)))


@pytest.fixture(scope="module")
def client(transcriber):
    with client_for(transcriber) as client:
        yield client


def post(client, path: Path, name: str | None = None, **fields):
    with open(path, "rb") as file:
        return client.post("/v1/transcribe", files={"file": (name or path.name, file)}, data=fields)


@pytest.mark.parametrize("audio", ["tone_wav", "spoken_wav"])
def test_transcribe_returns_decode_pys_json_plus_timing(audio, client, transcriber, tiny_checkpoint, capsys,
                                                        request):
    path = request.getfixturevalue(audio)
    response = post(client, path)
    assert response.status_code == 200
    record = response.json()
    timing = record.pop("timing")
    assert timing["total_seconds"] >= timing["decode_seconds"] > 0
    # the tiny model hears its tones, and something in speech: the comparisons below are not vacuous
    assert record["words"]
    expected = transcriber.transcribe(path)
    assert [w["word"] for w in record["words"]] == [w.word for w in expected.words]
    # decode.py --output-format json for the same file: the same record, the client's file name in it
    assert decode.main(["--checkpoint", str(tiny_checkpoint), "--device", "cpu", "--output-format", "json",
                        str(path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert record == {**printed, "file": path.name, "source": path.name}


def test_decoding_options_are_decode_pys(client, transcriber, tone_wav):
    response = post(client, tone_wav, beam="4", insertion_bonus="0.5")
    assert response.status_code == 200
    beam = Transcriber(transcriber.model, transcriber.config, transcriber.tokens, beam_size=4, insertion_bonus=0.5)
    assert [w["word"] for w in response.json()["words"]] == [w.word for w in beam.transcribe(tone_wav).words]
    for fields, message in (({"beam": "0"}, "beam 0: must be from 1 to 256"),
                            ({"beam": "100000"}, "beam 100000: must be from 1 to 256"),
                            ({"beam": "wide"}, "beam: Input should be a valid integer"),
                            ({"lm_weight": "nan"}, "lm_weight nan: give a finite number"),
                            ({"hotword": "tones"}, "need a character model")):
        response = post(client, tone_wav, **fields)
        assert response.status_code == 400 and message in response.json()["error"], fields


def test_health(client):
    health = client.get("/health").json()
    assert health["model_loaded"] is True and health["checkpoint"] == "tiny" and health["device"] == "cpu"
    assert ".wav" in health["suffixes"]


def test_the_page_is_self_contained(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert 'id="file"' in response.text and "MediaRecorder" in response.text
    assert "src=" not in response.text and "<link" not in response.text  # nothing fetched from elsewhere


def test_not_audio_is_415_naming_the_upload_and_the_service_goes_on(client, tmp_path, tone_wav):
    text, empty = tmp_path / "notes.txt", tmp_path / "empty.wav"
    text.write_text("not a recording\n" * 20)
    empty.write_bytes(b"")
    for path in (text, empty):
        response = post(client, path)
        assert response.status_code == 415
        error = response.json()["error"]
        assert error.startswith(path.name) and str(tmp_path) not in error
        assert "asr-serve-" not in error  # not the service's temporary file
    assert client.post("/v1/transcribe", data={"beam": "2"}).status_code == 400  # no file at all
    assert client.get("/nowhere").json() == {"error": "Not Found"}
    assert post(client, tone_wav).status_code == 200


def multipart(path: Path) -> tuple[bytes, str]:
    """A multipart/form-data body with `path` as the field `file`, and its content type."""
    boundary = "asr-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def test_too_large_is_413_declared_or_streamed_and_the_service_goes_on(transcriber, tone_wav, tmp_path):
    samples, rate = sf.read(tone_wav, dtype="int16")
    long = tmp_path / "long.wav"
    sf.write(long, samples.repeat(3), rate, subtype="PCM_16")
    limit_mb = 2 * tone_wav.stat().st_size / serve.MIB
    with client_for(transcriber, max_upload_mb=limit_mb) as client:
        declared = post(client, long)
        assert declared.status_code == 413 and "--max-upload-mb" in declared.json()["error"]
        body, content_type = multipart(long)
        # an iterator is sent chunked, with no Content-Length: the limit counts the bytes as they come
        streamed = client.post("/v1/transcribe", content=iter([body[:1000], body[1000:]]),
                               headers={"content-type": content_type})
        assert streamed.status_code == 413 and "--max-upload-mb" in streamed.json()["error"]
        assert post(client, tone_wav).status_code == 200


def test_a_full_queue_is_503_and_the_service_goes_on(transcriber, tone_wav, monkeypatch):
    service = serve.Service(transcriber, "tiny", queue_size=0)  # one request decoding, none waiting
    started, release = threading.Event(), threading.Event()
    transcribe_upload = service.transcribe_upload

    def held(*args):  # the decoding thread, held until the test lets it go
        started.set()
        assert release.wait(30)
        return transcribe_upload(*args)

    monkeypatch.setattr(service, "transcribe_upload", held)
    with TestClient(serve.create_app(service)) as client:
        first = {}
        thread = threading.Thread(target=lambda: first.update(response=post(client, tone_wav)))
        thread.start()
        try:
            assert started.wait(30)  # the first request holds the one place
            refused = post(client, tone_wav)
            assert refused.status_code == 503 and "busy" in refused.json()["error"]
            assert refused.headers["retry-after"] == "1"
            assert client.get("/health").json()["queue"] == {"admitted": 1, "capacity": 1}
        finally:
            release.set()
            thread.join(30)
        assert first["response"].status_code == 200
        monkeypatch.setattr(service, "transcribe_upload", transcribe_upload)
        assert post(client, tone_wav).status_code == 200
        assert client.get("/health").json()["queue"]["admitted"] == 0


# ---- the page in a real browser ------------------------------------------------------------------------


class DevTools:
    """The least of a Chrome DevTools Protocol client: one page's websocket, commands answered in turn."""

    def __init__(self, socket):
        self.socket, self.next_id = socket, 0

    def __call__(self, method: str, **params) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:  # events arrive in between; skip them
            message = json.loads(self.socket.recv(timeout=20))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]

    def evaluate(self, expression: str):
        result = self(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 15.0):
        """The value of `expression` once it is truthy (polled: the page works asynchronously)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"the page never gave {expression}; status: {self.evaluate(STATUS)!r}")


STATUS = "document.getElementById('status').textContent"


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if ON_CI:
            pytest.fail("chromium is missing: install.sh installs it (Debian package chromium)")
        pytest.skip("needs chromium (Debian package chromium; install.sh installs it)")
    return found


@pytest.fixture
def live_server(transcriber):
    """The service on a free port of 127.0.0.1, in uvicorn in a thread."""
    uvicorn = need("uvicorn")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    app = serve.create_app(serve.Service(transcriber, "tiny"))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture
def browser(tmp_path):
    """A headless chromium with remote debugging on a port it picks; the DevTools client of its page."""
    need("websockets")
    profile = tmp_path / "profile"
    # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start
    process = subprocess.Popen([chromium_binary(), "--headless=new", "--no-sandbox", "--disable-gpu",
                                "--disable-dev-shm-usage", "--no-first-run", "--remote-debugging-port=0",
                                "--autoplay-policy=no-user-gesture-required",
                                f"--user-data-dir={profile}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"  # chromium writes the port it chose here
        deadline = time.monotonic() + 20
        while not (port_file.is_file() and port_file.read_text().strip()) and time.monotonic() < deadline:
            assert process.poll() is None, "chromium exited at start"
            time.sleep(0.05)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
            page = next(t for t in json.load(answer) if t["type"] == "page")
        from websockets.sync.client import connect

        with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=20) as devtools_socket:
            yield DevTools(devtools_socket)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def test_the_page_in_a_headless_browser_shows_the_apis_words(live_server, browser, tone_wav):
    body, content_type = multipart(tone_wav)
    request = urllib.request.Request(f"{live_server}/v1/transcribe", body, {"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=30) as answer:
        api_words = [w["word"] for w in json.load(answer)["words"]]
    assert api_words

    browser("Page.navigate", url=f"{live_server}/")
    browser.wait_for("document.getElementById('model').textContent.startsWith('model tiny')")
    document = browser("DOM.getDocument")
    chooser = browser("DOM.querySelector", nodeId=document["root"]["nodeId"], selector="#file")
    browser("DOM.setFileInputFiles", files=[str(tone_wav)], nodeId=chooser["nodeId"])  # fires 'change'

    shown = browser.wait_for("[...document.querySelectorAll('#words .word')].map(e => e.textContent)")
    assert shown == api_words
    assert browser.evaluate("document.querySelectorAll('#lane span').length") == len(api_words)
    assert browser.evaluate("document.getElementById('elapsed').textContent").startswith("request took")
    # the waveform was drawn: the canvas is not blank
    assert browser.evaluate("(() => { const c = document.getElementById('wave'); return c.getContext('2d')"
                            ".getImageData(0, 0, c.width, c.height).data.some(v => v > 0); })()")



# What a microphone gives the page: the tone file played into a MediaRecorder (webm/opus, which the
# server cannot read), then handed to the page's own transcribe() as a recording.
RECORD_AND_TRANSCRIBE = """(async () => {
  const bytes = Uint8Array.from(atob(WAV_BASE64), c => c.charCodeAt(0)).buffer;
  const context = new AudioContext();
  const source = context.createBufferSource();
  source.buffer = await context.decodeAudioData(bytes);
  const tap = context.createMediaStreamDestination();
  source.connect(tap);
  const recorder = new MediaRecorder(tap.stream), chunks = [];
  recorder.ondataavailable = (e) => chunks.push(e.data);
  const stopped = new Promise((done) => { recorder.onstop = done; });
  recorder.start();
  source.start();
  source.onended = () => recorder.stop();
  await stopped;
  const webm = new Blob(chunks, {type: recorder.mimeType});
  const form = new FormData();
  form.append("file", webm, "recording.webm");
  const direct = await fetch("v1/transcribe", {method: "POST", body: form});
  await transcribe(webm, "recording.webm", true);
  return [recorder.mimeType, direct.status];
})()"""


def test_the_page_sends_a_microphone_recording_as_wav(live_server, browser, tone_wav):
    import base64

    browser("Page.navigate", url=f"{live_server}/")
    browser.wait_for("document.getElementById('model').textContent.startsWith('model tiny')")
    script = RECORD_AND_TRANSCRIBE.replace("WAV_BASE64", repr(base64.b64encode(tone_wav.read_bytes()).decode()))
    mime, direct_status = browser.evaluate(script)
    assert mime.startswith("audio/webm") and direct_status == 415  # the server cannot read webm itself...
    status = browser.evaluate(STATUS)  # ...the WAV the page makes of it, it can
    assert status.startswith("recording.wav: "), status
    assert browser.evaluate("document.querySelectorAll('#words .word').length") > 0
