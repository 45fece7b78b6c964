"""A transcription service: one model loaded once, an HTTP API and a page to try it in a browser.

    python -m asr.serve [--checkpoint CKPT] [--host 127.0.0.1] [--port 8000]     (or: asr-serve)

Endpoints:
  POST /v1/transcribe   multipart upload `file`, decoding options as form fields named after
                        decode.py's flags: beam, no_lm, lm_weight, insertion_bonus, hotword
                        (repeatable), hotwords and vocabulary (the text of decode.py's files:
                        WORD[:BOOST] / a word a line), raw_rate, raw_encoding. Returns the record
                        of ``decode.py --output-format json`` for the file, plus "timing".
  GET  /health          whether the model is loaded, its checkpoint, the device, the queue
  GET  /                a page: drop or choose a file, or record from the microphone; shows the
                        words with their times and confidences under the waveform

One thread decodes, one request at a time; at most --queue-size more wait for it, and a
request beyond those is refused at once (503) rather than left to time out. Every error is
JSON, {"error": "..."}: 400 for a bad form field, 413 for an upload over --max-upload-mb,
415 for a file that is not audio the model's front end can read, 503 when the queue is full.
A failed request leaves the service serving.

Needs the `serve` extra: pip install 'asr[serve]' (FastAPI, uvicorn, python-multipart).
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoint's annotations at run
# time, and they name classes imported inside create_app (FastAPI is an optional extra).
import argparse
import asyncio
import copy
import dataclasses
import math
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path, PurePath

from asr.cli import run
from asr.errors import UserError

MIB = 1024 * 1024
# A client's beam is capped: the search's cost grows with it, and one request must not hold the one
# decoding thread for minutes. decode.py's largest documented beam is 100.
MAX_BEAM = 256


@dataclasses.dataclass
class Options:
    """A request's decoding options: decode.py's flags, None where the request leaves them to the model."""

    beam: int | None = None
    no_lm: bool = False
    lm_weight: float | None = None
    insertion_bonus: float | None = None
    hotword: list[str] = dataclasses.field(default_factory=list)
    hotwords: str | None = None
    vocabulary: str | None = None
    raw_rate: int | None = None
    raw_encoding: str = "PCM_16"


class UnreadableUpload(Exception):
    """The upload is not a file the model's front end reads (415)."""


class QueueFull(Exception):
    """Every place in the decoding queue is taken (503)."""


class DecodingQueue:
    """One decoding thread (the model is used by one request at a time, and CPU threads are not
    oversubscribed), and at most `capacity` requests admitted: the one decoding and those waiting."""

    def __init__(self, waiting: int):
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="asr-decode")
        self.capacity = waiting + 1
        self.admitted = 0

    async def run(self, function, *args):
        """`function(*args)` on the decoding thread; QueueFull if `capacity` requests are admitted."""
        if self.admitted >= self.capacity:
            raise QueueFull(f"the service is busy: {self.admitted} request(s) decoding or waiting, the most it "
                            f"admits; try again shortly")
        self.admitted += 1
        loop = asyncio.get_running_loop()
        job = self.executor.submit(function, *args)
        # Released when the job ends, not when this coroutine does: a client that hangs up leaves its
        # job running, and the bound must count it.
        job.add_done_callback(lambda _: loop.call_soon_threadsafe(self._release))
        return await asyncio.wrap_future(job)

    def _release(self) -> None:
        self.admitted -= 1


class Service:
    """The loaded model and what a request does with it."""

    def __init__(self, transcriber, checkpoint: str, queue_size: int = 4, max_upload_mb: float = 50.0):
        self.transcriber, self.checkpoint = transcriber, checkpoint
        self.queue = DecodingQueue(queue_size)
        self.max_upload_bytes = int(max_upload_mb * MIB)

    def health(self) -> dict:
        t = self.transcriber
        return {"status": "ok", "model_loaded": t is not None, "checkpoint": self.checkpoint,
                "device": str(t.device), "modality": t.frontend.modality, "tokens": t.tokens.kind,
                "suffixes": sorted(t.frontend.suffixes),  # the page converts other formats to WAV
                "queue": {"admitted": self.queue.admitted, "capacity": self.queue.capacity},
                "max_upload_mb": self.max_upload_bytes / MIB}

    def transcriber_for(self, options: Options):
        """The loaded transcriber with `options` applied: a shallow copy, so the model is shared and the
        defaults stay as loaded. Raises UserError for an option it cannot take."""
        from asr.transcribe import parse_hotword, parse_word_list, word_bias

        check_options(options)
        t = copy.copy(self.transcriber)
        if options.no_lm:
            # What decode.py --no-lm decodes with: no LM, and Transcriber's defaults instead of the
            # settings stored with the LM
            t.lm, t.lm_path, t.beam_size, t.lm_weight, t.insertion_bonus = None, None, 1, 0.0, 0.0
        for name, value in (("beam_size", options.beam), ("lm_weight", options.lm_weight),
                            ("insertion_bonus", options.insertion_bonus)):
            if value is not None:
                setattr(t, name, value)
        hotwords = parse_word_list((options.hotwords or "").splitlines(), "hotwords", boosts=True)
        for text in options.hotword:
            hotwords.update(parse_hotword(text, source="hotword"))
        vocabulary = None
        if options.vocabulary is not None:
            vocabulary = list(parse_word_list(options.vocabulary.splitlines(), "vocabulary"))
            if not vocabulary:
                raise UserError("vocabulary: no words; give one word a line, or leave the field out")
        if hotwords or vocabulary is not None:
            t.bias = word_bias(t.tokens, hotwords, vocabulary)
            if options.beam is None and t.beam_size <= 1:
                t.beam_size = 16  # as decode.py: biasing needs hypotheses to choose among
        if options.raw_rate is not None:
            from asr.audio import RawFormat
            from asr.frontend import frontend_for

            t.frontend = frontend_for(t.config.features, raw=RawFormat(options.raw_rate, options.raw_encoding))
        return t

    def transcribe_upload(self, transcriber, upload, name: str) -> tuple[dict, float]:
        """Runs on the decoding thread: the upload (a binary file object) copied to a temporary file (the
        audio reader takes paths, and its suffix names the format), transcribed. Returns decode.py's JSON
        record and the seconds it took; UnreadableUpload for a file the front end refuses."""
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="asr-serve-") as folder:
            path = Path(folder) / f"upload{format_suffix(name)}"
            with open(path, "wb") as out:
                shutil.copyfileobj(upload, out)
            try:
                result = transcriber.transcribe(path)
            except UserError as error:
                # the message names our temporary file (name the client's) and decode.py's flags
                # (name this service's form fields)
                message = str(error).replace(str(path), name).replace("--raw-", "raw_")
                raise UnreadableUpload(message) from None
        record = dataclasses.replace(result, source=name).to_json_dict(file=name)
        return record, time.perf_counter() - start


def check_options(options: Options) -> None:
    """decode.py's checks of the same values, the form field named in each message."""
    if options.beam is not None and not 1 <= options.beam <= MAX_BEAM:
        raise UserError(f"beam {options.beam}: must be from 1 to {MAX_BEAM} on this service")
    for name in ("lm_weight", "insertion_bonus"):
        value = getattr(options, name)
        if value is not None and not math.isfinite(value):
            raise UserError(f"{name} {value}: give a finite number, e.g. 0.5")


def format_suffix(name: str) -> str:
    """The suffix of an uploaded file's name when it is a plain one (.wav, .flac): the audio reader
    tells headerless files from others by it. Anything odd is dropped."""
    suffix = PurePath(name).suffix
    return suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,8}", suffix) else ""


def upload_name(filename: str | None) -> str:
    """The client's file name without any folders (it only labels the result and messages)."""
    return PurePath((filename or "").replace("\\", "/")).name or "upload"


def too_large_message(limit: int) -> str:
    return f"the upload is larger than the service takes ({limit / MIB:.3g} MiB, --max-upload-mb); send a shorter file"


class UploadLimit:
    """ASGI middleware: a request body over `limit` bytes is refused with 413 before it is stored, at once
    when its Content-Length says so, else (a chunked upload) as soon as the bytes received pass it."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        from fastapi import HTTPException
        from fastapi.responses import JSONResponse

        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            response = JSONResponse({"error": too_large_message(self.limit)}, status_code=413)
            return await response(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                # an HTTPException passes through FastAPI's form parsing unchanged, to the handler below
                raise HTTPException(413, too_large_message(self.limit))
            return message

        await self.app(scope, counted, send)


def page() -> str:
    """The browser page (asr/static/index.html: self-contained, no CDN)."""
    return resources.files("asr.static").joinpath("index.html").read_text(encoding="utf-8")


def create_app(service: Service):
    """The FastAPI application serving `service`."""
    from typing import Annotated

    from fastapi import FastAPI, File, Form, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app = FastAPI(title="asr", summary="CTC speech recognition", docs_url=None, redoc_url=None)
    app.state.service = service
    app.add_middleware(UploadLimit, limit=service.max_upload_bytes)
    html = page()

    def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_form(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:])) or 'request'}: {e['msg']}" for e in exc.errors())
        return error(400, f"bad request: {problems}")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):
        return error(500, f"internal error: {type(exc).__name__}: {exc}")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index():
        return html

    @app.get("/health")
    async def health():
        return service.health()

    @app.post("/v1/transcribe")
    async def transcribe(file: Annotated[UploadFile, File()],
                         beam: Annotated[int | None, Form()] = None,
                         no_lm: Annotated[bool, Form()] = False,
                         lm_weight: Annotated[float | None, Form()] = None,
                         insertion_bonus: Annotated[float | None, Form()] = None,
                         hotword: Annotated[list[str] | None, Form()] = None,
                         hotwords: Annotated[str | None, Form()] = None,
                         vocabulary: Annotated[str | None, Form()] = None,
                         raw_rate: Annotated[int | None, Form()] = None,
                         raw_encoding: Annotated[str, Form()] = "PCM_16"):
        start = time.perf_counter()
        options = Options(beam, no_lm, lm_weight, insertion_bonus, [h for h in hotword or [] if h.strip()],
                          hotwords, vocabulary, raw_rate, raw_encoding)
        name = upload_name(file.filename)
        try:
            transcriber = service.transcriber_for(options)
            record, decode_seconds = await service.queue.run(service.transcribe_upload, transcriber, file.file,
                                                             name)
        except UnreadableUpload as exc:
            return error(415, str(exc))
        except UserError as exc:
            return error(400, str(exc))
        except QueueFull as exc:
            return error(503, str(exc), {"Retry-After": "1"})
        total = time.perf_counter() - start
        record["timing"] = {"decode_seconds": round(decode_seconds, 4),
                            "wait_seconds": round(max(total - decode_seconds, 0.0), 4),
                            "total_seconds": round(total, 4)}
        return record

    return app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="checkpoint file or run folder (default: $ASR_CHECKPOINT, else the "
                                             "shipped English model, checkpoints/english)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--queue-size", type=int, default=4,
                        help="requests that may wait while one decodes; more are refused with 503")
    parser.add_argument("--max-upload-mb", type=float, default=50.0, help="larger uploads are refused with 413")
    parser.add_argument("--chunk-seconds", type=float, default=30.0, help="longer audio is decoded in chunks")
    return parser.parse_args(argv)


def load_service(args: argparse.Namespace) -> Service:
    """The model loaded (once, before the service listens) and the service around it."""
    from asr.checkpoint import resolve
    from asr.distributed import choose_device
    from asr.pretrained import default_checkpoint
    from asr.transcribe import Transcriber

    if args.queue_size < 0:
        raise UserError(f"--queue-size {args.queue_size}: must be at least 0")
    if not (math.isfinite(args.max_upload_mb) and args.max_upload_mb > 0):
        raise UserError(f"--max-upload-mb {args.max_upload_mb:g}: give a positive number, e.g. 50")
    if not (math.isfinite(args.chunk_seconds) and args.chunk_seconds > 0):
        raise UserError(f"--chunk-seconds {args.chunk_seconds:g}: give a positive number of seconds, e.g. 30")
    checkpoint = resolve(args.checkpoint or default_checkpoint())
    device = choose_device(args.device, f"--device {args.device}", "--device cpu")
    transcriber = Transcriber.from_checkpoint(checkpoint, device=device, chunk_seconds=args.chunk_seconds)
    name = checkpoint.parent.name if checkpoint.name in ("best.pt", "model.pt", "last.pt") else checkpoint.name
    return Service(transcriber, name, args.queue_size, args.max_upload_mb)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvicorn
    except ImportError:
        raise UserError("the service needs the serve extra: pip install 'asr[serve]' "
                        "(fastapi, uvicorn, python-multipart)") from None
    service = load_service(args)
    print(f"asr.serve: {service.checkpoint} on {service.transcriber.device}; http://{args.host}:{args.port}/",
          file=sys.stderr, flush=True)
    uvicorn.run(create_app(service), host=args.host, port=args.port, log_level="info")
    return 0


def cli() -> None:
    """The `asr-serve` command."""
    run(main)


if __name__ == "__main__":
    cli()
