"""Interop client: the `websockets` library's asyncio API.

Also subscribes through the URL (`/ws?topics=...`) instead of a first
message, so that path is covered too. Usage:
`python client_websockets.py http://127.0.0.1:PORT`.
"""

import asyncio

from websockets.asyncio.client import connect as ws_connect

import scenario


class AsyncioTransport:
    def __init__(self, ws):
        self.ws = ws

    async def send_text(self, text: str) -> None:
        await self.ws.send(text)

    async def recv(self, timeout: float):
        # Cancelling recv() loses no frame (documented by websockets), so a
        # timeout here is safe.
        try:
            return await asyncio.wait_for(self.ws.recv(), max(timeout, 0.0))
        except TimeoutError:
            return None

    async def close(self) -> None:
        await self.ws.close()


async def connect(url: str) -> AsyncioTransport:
    return AsyncioTransport(await ws_connect(url, open_timeout=scenario.STEP_S, max_size=1 << 20))


if __name__ == "__main__":
    scenario.main("python-websockets", connect, topics_in_url=True)
