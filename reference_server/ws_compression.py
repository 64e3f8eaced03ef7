"""permessage-deflate with a threshold: small WebSocket messages go uncompressed.

uvicorn (through websockets) compresses every frame of a connection that
negotiated permessage-deflate, which for the protocol's few-hundred-byte
envelopes roughly doubles the server's CPU per delivery and buys little.
RFC 7692 lets a sender leave any message uncompressed (RSV1 clear), which is
what Node's ``ws`` does below its threshold; :class:`ThresholdDeflate` does
the same below ``compression_threshold_bytes``. Skipping a message leaves
the compressor untouched, so context takeover stays valid for the next
compressed one. A fragmented message is compressed whole.

:func:`websocket_protocol` gives uvicorn its WebSocket protocol class with
that extension (``uvicorn.Config(ws=...)``); everything else is uvicorn's.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import CONT, CTRL_OPCODES, Frame
from websockets.server import ServerProtocol
from websockets.typing import ExtensionParameter

__all__ = ["ThresholdDeflate", "ThresholdDeflateFactory", "websocket_protocol"]


class ThresholdDeflate(PerMessageDeflate):
    """permessage-deflate that sends single-frame messages under ``threshold`` bytes as they are.

    Its zlib objects are made when first used, not when the connection opens:
    most connections never send or receive a message over the threshold, and
    the two objects, made at once, held about 30 KiB of every idle connection.
    """

    def __init__(self, *args: Any, threshold: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threshold = threshold
        self._plain = False
        # PerMessageDeflate made them; __getattr__ makes them again on first use.
        self.__dict__.pop("encoder", None)
        self.__dict__.pop("decoder", None)

    def __getattr__(self, name: str) -> Any:
        # Only reached for a missing attribute: the codecs before their first use.
        if name == "encoder" and not self.local_no_context_takeover:
            settings = self.compress_settings
            self.encoder = zlib.compressobj(wbits=-self.local_max_window_bits, **settings)
            return self.encoder
        if name == "decoder" and not self.remote_no_context_takeover:
            self.decoder = zlib.decompressobj(wbits=-self.remote_max_window_bits)
            return self.decoder
        raise AttributeError(name)

    def encode(self, frame: Frame) -> Frame:
        """Compress ``frame``, unless it is a whole message under the threshold."""
        if frame.opcode in CTRL_OPCODES:
            return frame
        if frame.opcode is not CONT:
            self._plain = frame.fin and len(frame.data) < self.threshold
        if self._plain:
            return frame  # RSV1 stays clear: an uncompressed message (RFC 7692, 6.1)
        return super().encode(frame)


class ThresholdDeflateFactory(ServerPerMessageDeflateFactory):
    """Negotiates permessage-deflate as websockets does, with :class:`ThresholdDeflate`."""

    def __init__(self, threshold: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.threshold = threshold

    def process_request_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> tuple[list[ExtensionParameter], PerMessageDeflate]:
        response, negotiated = super().process_request_params(params, accepted_extensions)
        extension = ThresholdDeflate(
            negotiated.remote_no_context_takeover,
            negotiated.local_no_context_takeover,
            negotiated.remote_max_window_bits,
            negotiated.local_max_window_bits,
            self.compress_settings,
            threshold=self.threshold,
        )
        return response, extension


def websocket_protocol(threshold: int) -> type[WebSocketsSansIOProtocol]:
    """uvicorn's sans-I/O WebSocket protocol, compressing messages of ``threshold`` bytes up."""

    class ThresholdWebSocketProtocol(WebSocketsSansIOProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if self.config.ws_per_message_deflate:
                # uvicorn's own settings (12-bit windows, memLevel 5), our extension.
                factory = ThresholdDeflateFactory(
                    threshold,
                    server_max_window_bits=12,
                    client_max_window_bits=12,
                    compress_settings={"memLevel": 5},
                )
                self.conn = ServerProtocol(
                    extensions=[factory],
                    max_size=self.config.ws_max_size,
                    logger=logging.getLogger("uvicorn.error"),
                )

    return ThresholdWebSocketProtocol
