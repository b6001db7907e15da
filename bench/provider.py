"""A fast stand-in messaging provider for benchmarks: records (Idempotency-Key, arrival time).

One asyncio process speaking just enough HTTP/1.1 (keep-alive, Content-Length bodies): every
POST is answered 200 `{"messageId": "prov-<n>"}` and recorded with `time.time()` taken as soon as
the whole request has been read. `GET /_stats` returns the count; `GET /_records?from=K` returns
the records from index K on as `[[key, arrived], ...]`.

    python bench/provider.py [--port 0]     # prints "listening <port>" once it accepts connections

tests/support.py's ThreadingHTTPServer answers HTTP/1.0 (a new connection per request) and takes a
thread and the GIL per request; this one keeps the senders' connections open and stays far ahead
of what two cores of workers can send (see README.md).
"""

import argparse
import asyncio
import time
from urllib.parse import parse_qs, urlsplit

from local_http import JsonAnswering

RECORDS: list[tuple[str, float]] = []


class ProviderProtocol(JsonAnswering):
    def answer(self, method, target, headers, body):
        if method == "POST":
            RECORDS.append((headers.get("idempotency-key", ""), time.time()))
            return {"messageId": f"prov-{len(RECORDS)}"}
        url = urlsplit(target)
        start = int(parse_qs(url.query).get("from", ["0"])[0])
        return {"count": len(RECORDS)} if url.path == "/_stats" else RECORDS[start:]


async def serve(port):
    server = await asyncio.get_running_loop().create_server(ProviderProtocol, "127.0.0.1", port, backlog=1024)
    print("listening", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args().port))
