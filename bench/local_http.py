"""The little HTTP/1.1 of the bench's own servers (provider.py, the chaos run's webhook receiver):
keep-alive connections, bodies framed by Content-Length, a JSON answer with 200 to every request."""

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


class JsonAnswering(asyncio.Protocol):
    """Answers each request on a connection, in order, with 200 and the JSON of `answer()`; closes the
    connection after a request that asks for it."""

    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""

    def data_received(self, data):
        self.buffer += data
        while (request := take_request(self.buffer)) is not None:
            first_line, headers, body, self.buffer = request
            method, target, _ = first_line.split(" ", 2)
            payload = json.dumps(self.answer(method, target, headers, body)).encode()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(payload), payload)
            )
            if headers.get("connection", "").lower() == "close":
                self.transport.close()
                return

    def answer(self, method, target, headers, body):
        raise NotImplementedError
