"""The least any HTTP server can do for bench/throughput.py's four requests: read each request from a
kept-alive connection and write a fixed JSON answer — no WSGI, no framework, no work. The time a
client waits for it is the loopback round trip that every server pays on this machine; Flask's own
work per request is measured in process (bench/throughput.py). Prints its port, then serves until killed.

    python bench/bare_http.py
"""

from __future__ import annotations

import json
import socket
import threading


def _answer(status: str, body: dict) -> bytes:
    payload = json.dumps(body).encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
            .encode() + payload)


ANSWERS = {  # by the start of the request line: what bench/throughput.run_http reads from each
    b"POST /api/v1/process-instances": _answer("201 CREATED", {"id": "bare", "status": "waiting"}),
    b"GET /api/v1/tasks": _answer("200 OK", {"items": [{"id": "bare-task"}], "total": 1}),
    b"POST /api/v1/tasks": _answer("200 OK", {"id": "bare-task", "status": "completed"}),
}


def serve(connection: socket.socket) -> None:
    buffered = b""
    with connection:
        while data := connection.recv(65536):
            buffered += data
            while b"\r\n\r\n" in buffered:
                head, _, rest = buffered.partition(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                if len(rest) < length:
                    break
                buffered = rest[length:]
                connection.sendall(next(answer for start, answer in ANSWERS.items() if head.startswith(start)))


def main() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    print(listener.getsockname()[1], flush=True)
    while True:
        connection, _ = listener.accept()
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(connection,), daemon=True).start()


if __name__ == "__main__":
    main()
