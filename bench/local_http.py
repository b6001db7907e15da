"""The little HTTP/1.1 of the bench's own servers (provider.py, the chaos run's webhook receiver):
keep-alive connections, bodies framed by Content-Length, a JSON answer to every request (200 unless
`answer()` says otherwise), after `delay` seconds when a real provider's latency is wanted."""

import asyncio
import json


def take_request(buffer: bytes):
    """Split one whole HTTP/1.1 request off the front of `buffer`: (first line, headers, body, rest),
    or None while it is incomplete. Headers are lower-cased; bodies are framed by Content-Length."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    lines = buffer[:head_end].decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body_end = head_end + 4 + int(headers.get("content-length") or 0)
    if len(buffer) < body_end:
        return None
    return lines[0], headers, buffer[head_end + 4 : body_end], buffer[body_end:]


REASONS = {200: "OK", 429: "Too Many Requests"}


class JsonAnswering(asyncio.Protocol):
    """Answers each request on a connection, in order, with the JSON of `answer()` (a payload, or
    (status, payload, extra headers)); closes the connection after a request that asks for it.
    Clients send one request at a time per connection, so a delayed answer keeps the order."""

    delay = 0.0

    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""

    def data_received(self, data):
        self.buffer += data
        while (request := take_request(self.buffer)) is not None:
            first_line, headers, body, self.buffer = request
            method, target, _ = first_line.split(" ", 2)
            answer = self.answer(method, target, headers, body)
            status, payload, extra = answer if isinstance(answer, tuple) else (200, answer, {})
            closing = headers.get("connection", "").lower() == "close"
            response = _response(status, json.dumps(payload).encode(), extra)
            if self.delay and method == "POST":
                asyncio.get_running_loop().call_later(self.delay, self._write, response, closing)
            else:
                self._write(response, closing)
            if closing:
                return

    def _write(self, response: bytes, closing: bool):
        if self.transport.is_closing():
            return
        self.transport.write(response)
        if closing:
            self.transport.close()

    def answer(self, method, target, headers, body):
        raise NotImplementedError


def _response(status: int, body: bytes, extra: dict) -> bytes:
    head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", "Content-Type: application/json"]
    head += [f"Content-Length: {len(body)}", *(f"{name}: {value}" for name, value in extra.items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body
