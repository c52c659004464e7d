"""Function 05 ("write single coil") carrying any 16-bit value, for relay boards' timed commands.

The standard only allows 0xFF00 (on) and 0x0000 (off) in function 05, and pymodbus's own
`WriteSingleCoil*` PDUs keep nothing but a bool. Relay boards (Waveshare, Eletechsup and their
clones) use other values at a separate address range for commands such as "flash on for N × 100 ms",
so the word itself must travel and come back in the echo. `CoilWord` is one PDU class for both
ends: the bus registers it with its client (so the reply's word can be checked against the request)
and the simulator registers it with its server (so a relay module sees the raw word).

It decodes the standard values exactly like pymodbus does (`bits == [word != 0]`), so plain coil
writes keep working through a client or server that has it registered.
"""

from __future__ import annotations

import struct
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.pdu import ExceptionResponse, ModbusPDU

COIL_ON = 0xFF00
COIL_OFF = 0x0000


class CoilWord(ModbusPDU):
    """Function 05 with a raw 16-bit value (request and its echo alike)."""

    function_code = 5
    rtu_frame_size = 8  # unit, function, address (2), value (2), CRC (2)

    def __init__(
        self, address: int = 0, word: int = 0, dev_id: int = 0, transaction_id: int = 0, **_: Any
    ) -> None:
        super().__init__(dev_id=dev_id, transaction_id=transaction_id, address=address, bits=[word != 0])
        self.word = word

    def encode(self) -> bytes:
        self.verifyAddress()
        if not 0 <= self.word <= 0xFFFF:
            raise ValueError(f"0 <= word {self.word} <= 65535 !")
        return struct.pack(">HH", self.address, self.word)

    def decode(self, data: bytes) -> None:
        self.address, self.word = struct.unpack(">HH", data[:4])
        self.bits = [self.word != 0]

    async def datastore_update(self, context: Any, device_id: int) -> ModbusPDU:
        """Server side: hand the raw word to the datastore (a simulated device's action sees it as
        the written value; the bit stored is its truth value) and echo the request."""
        if rc := await context.async_setValues(device_id, self.function_code, self.address, [self.word]):
            return ExceptionResponse(self.function_code, rc)
        values = await context.async_getValues(device_id, self.function_code, self.address, 1)
        if isinstance(values, ExcCodes):
            return ExceptionResponse(self.function_code, values)
        return CoilWord(self.address, self.word, self.dev_id, self.transaction_id)
