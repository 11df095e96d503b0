"""Interop client: tornado's `websocket_connect`.

Usage: `python client_tornado.py http://127.0.0.1:PORT`.
"""

import asyncio

from tornado.websocket import websocket_connect

import scenario


class TornadoTransport:
    def __init__(self, conn):
        self.conn = conn

    async def send_text(self, text: str) -> None:
        await self.conn.write_message(text)

    async def recv(self, timeout: float):
        # read_message() takes from tornado's queue; a cancelled get is
        # discarded by the queue before the next put, so no frame is lost.
        try:
            frame = await asyncio.wait_for(self.conn.read_message(), max(timeout, 0.0))
        except TimeoutError:
            return None
        if frame is None:
            raise scenario.Failure(f"connection closed: {self.conn.close_code} {self.conn.close_reason}")
        return frame

    async def close(self) -> None:
        self.conn.close()


async def connect(url: str) -> TornadoTransport:
    conn = await asyncio.wait_for(websocket_connect(url, max_message_size=1 << 20), scenario.STEP_S)
    return TornadoTransport(conn)


if __name__ == "__main__":
    scenario.main("python-tornado", connect)
