"""Load test of the service (asr/serve.py): N clients posting one file for a fixed time.

Starts `python -m asr.serve` on a free port of 127.0.0.1 (a subprocess, as it would run), waits for
/health, sends one warm-up request, then runs `--concurrency` client threads that each post the
file to /v1/transcribe again and again (each waiting for its answer) for `--duration` seconds.
Printed: requests per second answered 200, latency percentiles (p50/p90/p99) of those, the count of
every other status (503: the queue was full), the seconds of audio transcribed per second of wall
time, and the server's own mean decoding time per request. The server decodes one request at a time
(more clients queue behind it), so latency grows with the clients and throughput does not.

Run: python benchmarks/serve_load.py [--checkpoint CKPT] [--concurrency 8] [--duration 20] \
        [--queue-size 8] [--audio FILE]
The default file is a sentence synthesized with flite (Debian package flite).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

SENTENCE = "she had your dark suit in greasy wash water all year"
BOUNDARY = "asr-load-test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def synthesized(folder: Path) -> Path:
    """A spoken sentence (flite), the file every request sends."""
    if shutil.which("flite") is None:
        sys.exit("serve_load.py: flite is missing (Debian package flite); give a recording with --audio FILE")
    path = folder / "sentence.wav"
    subprocess.run(["flite", "-t", SENTENCE, "-o", str(path)], check=True)
    return path


def multipart(path: Path) -> tuple[bytes, str]:
    """The request body (the file as the form field `file`) and its content type."""
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    return head + path.read_bytes() + f"\r\n--{BOUNDARY}--\r\n".encode(), f"multipart/form-data; boundary={BOUNDARY}"


def start_server(args: argparse.Namespace, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "asr.serve", "--port", str(port), "--queue-size", str(args.queue_size)]
    if args.checkpoint:
        command += ["--checkpoint", args.checkpoint]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_until_up(port: int, server: subprocess.Popen, timeout: float = 180.0) -> dict:
    """/health's answer once the server gives one (the first start may compile the LSTM kernel)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"serve_load.py: the server exited with status {server.returncode}; run python -m asr.serve "
                     "to see why")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/health")
            return json.loads(connection.getresponse().read())
        except OSError:
            time.sleep(0.2)
    sys.exit(f"serve_load.py: no answer from the server within {timeout:.0f} s")


def post(connection: http.client.HTTPConnection, body: bytes, content_type: str) -> tuple[int, dict]:
    connection.request("POST", "/v1/transcribe", body, {"Content-Type": content_type})
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def client(port: int, body: bytes, content_type: str, deadline: float, results: list) -> None:
    """One client: post, wait for the answer, post again, until `deadline`. Appends (status, seconds,
    server decode seconds) per request; a dropped connection counts as status 0 and is reopened."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    while time.monotonic() < deadline:
        start = time.perf_counter()
        try:
            status, record = post(connection, body, content_type)
        except (OSError, http.client.HTTPException, ValueError):
            status, record = 0, {}
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        decode = record.get("timing", {}).get("decode_seconds")
        results.append((status, time.perf_counter() - start, decode))
    connection.close()


def report(results: list, wall: float, audio_seconds: float, args: argparse.Namespace) -> None:
    ok = [seconds for status, seconds, _ in results if status == 200]
    statuses = Counter(status for status, _, _ in results)
    print(f"{len(results)} requests in {wall:.1f} s from {args.concurrency} clients "
          f"(queue size {args.queue_size}): {dict(sorted(statuses.items()))}")
    if len(ok) < 2:
        print("too few answered requests for percentiles")
        return
    cuts = statistics.quantiles(ok, n=100, method="inclusive")
    decode = [d for status, _, d in results if status == 200 and d is not None]
    print(f"answered: {len(ok) / wall:.2f} requests/s; {len(ok) * audio_seconds / wall:.1f} s of audio per second")
    print(f"latency of answered requests: p50 {1000 * cuts[49]:.0f} ms, p90 {1000 * cuts[89]:.0f} ms, "
          f"p99 {1000 * cuts[98]:.0f} ms, max {1000 * max(ok):.0f} ms")
    print(f"server decoding time per request: mean {1000 * statistics.mean(decode):.0f} ms "
          f"({audio_seconds:.2f} s of audio each)")
    errors = len(results) - len(ok)
    print(f"errors: {errors} ({', '.join(f'{n} x {s}' for s, n in sorted(statuses.items()) if s != 200) or 'none'})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="the model to serve (default: the service's default)")
    parser.add_argument("--concurrency", type=int, default=8, help="clients posting at once")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument("--queue-size", type=int, default=8, help="the server's --queue-size")
    parser.add_argument("--audio", help="the file every request sends (default: a flite sentence)")
    args = parser.parse_args(argv)
    import soundfile as sf

    with tempfile.TemporaryDirectory(prefix="serve-load-") as folder:
        audio = Path(args.audio) if args.audio else synthesized(Path(folder))
        audio_seconds = sf.info(str(audio)).duration
        body, content_type = multipart(audio)
        port = free_port()
        server = start_server(args, port)
        try:
            health = wait_until_up(port, server)
            print(f"server: {health['checkpoint']} on {health['device']}, pid {server.pid}; "
                  f"{os.cpu_count()} CPUs here; file {audio.name}, {audio_seconds:.2f} s")
            status, record = post(http.client.HTTPConnection("127.0.0.1", port, timeout=120), body, content_type)
            if status != 200:
                sys.exit(f"serve_load.py: the warm-up request failed ({status}): {record.get('error')}")
            results: list = []
            deadline = time.monotonic() + args.duration
            threads = [threading.Thread(target=client, args=(port, body, content_type, deadline, results))
                       for _ in range(args.concurrency)]
            start = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            report(results, time.perf_counter() - start, audio_seconds, args)
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
