"""Memory-stream helpers that skip the scheduler round trip when no waiting is needed.

anyio's ``send``/``receive`` always pass a checkpoint (one extra event-loop iteration) even
when the buffer has room or holds an item. On the record path that is several loop turns
per batch; these helpers take the no-wait path first and wait only when they must, which
still checkpoints whenever the stream is full or empty.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

T = TypeVar("T")


async def send(stream: ObjectSendStream[T], item: T) -> None:
    if isinstance(stream, MemoryObjectSendStream):
        try:
            stream.send_nowait(item)
            return
        except anyio.WouldBlock:
            pass
    await stream.send(item)


async def drain(stream: ObjectReceiveStream[T]) -> AsyncIterator[T]:
    """Yield every item until the stream ends (the caller owns closing it)."""
    nowait = isinstance(stream, MemoryObjectReceiveStream)
    while True:
        if nowait:
            try:
                yield stream.receive_nowait()  # type: ignore[attr-defined]
                continue
            except anyio.WouldBlock:
                pass
            except anyio.EndOfStream:
                return
        try:
            yield await stream.receive()
        except anyio.EndOfStream:
            return
