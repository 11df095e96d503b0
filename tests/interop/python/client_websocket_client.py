"""Interop client: `websocket-client`'s callback API (`WebSocketApp`).

The app runs its own thread; its on_message callback hands frames to a queue
that the shared scenario (scenario.py) reads. Usage:
`python client_websocket_client.py http://127.0.0.1:PORT`.
"""

import asyncio
import queue
import threading

import websocket

import scenario

CLOSED = object()


class AppTransport:
    def __init__(self, url: str):
        self.frames: queue.Queue = queue.Queue()
        self.opened = threading.Event()
        self.app = websocket.WebSocketApp(
            url,
            on_open=lambda app: self.opened.set(),
            on_message=lambda app, message: self.frames.put(message),
            on_error=lambda app, error: self.frames.put(error),
            on_close=lambda app, code, reason: self.frames.put(CLOSED),
        )
        self.thread = threading.Thread(target=self.app.run_forever, daemon=True)

    async def start(self) -> "AppTransport":
        self.thread.start()
        if not await asyncio.to_thread(self.opened.wait, scenario.STEP_S):
            raise scenario.Failure(f"no connection within {scenario.STEP_S} s: {self.frames.queue!r:.200}")
        return self

    async def send_text(self, text: str) -> None:
        self.app.send(text)

    async def recv(self, timeout: float):
        try:
            frame = await asyncio.to_thread(self.frames.get, True, max(timeout, 0.0))
        except queue.Empty:
            return None
        if frame is CLOSED or isinstance(frame, Exception):
            raise scenario.Failure(f"connection ended: {frame}")
        return frame

    async def close(self) -> None:
        self.app.close()
        await asyncio.to_thread(self.thread.join, scenario.STEP_S)


async def connect(url: str) -> AppTransport:
    return await AppTransport(url).start()


if __name__ == "__main__":
    scenario.main("python-websocket-client", connect)
