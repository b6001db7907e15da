"""A stand-in messaging provider for benchmarks: records (Idempotency-Key, arrival time).

One asyncio process speaking just enough HTTP/1.1 (keep-alive, Content-Length bodies): every
POST is answered 200 `{"messageId": "prov-<n>"}` and recorded with `time.time()` taken as soon as
the whole request has been read. Real providers take 50–300 ms to answer a send and cap the rate:
`--latency-ms` delays every answer (without holding up other connections), and `--rate-cap N`
answers 429 with `Retry-After: 1` (unrecorded) to a POST beyond N in any sliding second.
`GET /_stats` returns the counts; `GET /_records?from=K` returns the records from index K on as
`[[key, arrived], ...]`.

    python bench/provider.py [--port 0] [--latency-ms 200] [--rate-cap 80]   # prints "listening <port>"

tests/support.py's ThreadingHTTPServer answers HTTP/1.0 (a new connection per request) and takes a
thread and the GIL per request; this one keeps the senders' connections open and stays far ahead
of what two cores of workers can send (see README.md).
"""

import argparse
import asyncio
import time
from collections import deque
from urllib.parse import parse_qs, urlsplit

from local_http import JsonAnswering

RECORDS: list[tuple[str, float]] = []
REFUSED: list[float] = []  # arrival times of the POSTs answered 429
RECENT: deque[float] = deque()  # accepted POSTs of the last second, for the rate cap


class ProviderProtocol(JsonAnswering):
    rate_cap = 0

    def answer(self, method, target, headers, body):
        if method == "POST":
            return self.accept(headers.get("idempotency-key", ""), time.time())
        url = urlsplit(target)
        start = int(parse_qs(url.query).get("from", ["0"])[0])
        if url.path == "/_stats":
            return {"count": len(RECORDS), "refused": len(REFUSED)}
        return RECORDS[start:]

    def accept(self, key, arrived):
        while RECENT and RECENT[0] <= arrived - 1.0:
            RECENT.popleft()
        if self.rate_cap and len(RECENT) >= self.rate_cap:
            REFUSED.append(arrived)
            return 429, {"error": {"code": 130429, "message": "Rate limit hit"}}, {"Retry-After": "1"}
        RECENT.append(arrived)
        RECORDS.append((key, arrived))
        return {"messageId": f"prov-{len(RECORDS)}"}


async def serve(port):
    server = await asyncio.get_running_loop().create_server(ProviderProtocol, "127.0.0.1", port, backlog=4096)
    print("listening", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="answer every POST this much later")
    parser.add_argument("--rate-cap", type=int, default=0, help="429 beyond this many POSTs a second (0: none)")
    options = parser.parse_args()
    ProviderProtocol.delay, ProviderProtocol.rate_cap = options.latency_ms / 1000, options.rate_cap
    asyncio.run(serve(options.port))
