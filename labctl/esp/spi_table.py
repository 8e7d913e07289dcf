"""Inbound SPI -> (SA, owner) lookup, the receive-side SA database."""

from __future__ import annotations

from typing import Generic, TypeVar

from labctl.esp.errors import EspUnknownSpi
from labctl.esp.sa import Direction, EspSa, spi_of

Owner = TypeVar("Owner")


class InboundSpiTable(Generic[Owner]):
    """SPIs are chosen by us (the receiver), so one table per node is unambiguous."""

    def __init__(self) -> None:
        self._by_spi: dict[int, tuple[EspSa, Owner]] = {}

    def add(self, sa: EspSa, owner: Owner) -> None:
        if sa.direction is not Direction.IN:
            raise ValueError(f"SA 0x{sa.spi:08x} is outbound; only inbound SAs go in this table")
        if sa.spi in self._by_spi:
            raise ValueError(f"inbound SPI 0x{sa.spi:08x} is already installed")
        self._by_spi[sa.spi] = (sa, owner)

    def remove(self, spi: int) -> EspSa | None:
        entry = self._by_spi.pop(spi, None)
        return entry[0] if entry else None

    def get(self, spi: int) -> tuple[EspSa, Owner] | None:
        return self._by_spi.get(spi)

    def lookup(
        self, packet: bytes | bytearray | memoryview, offset: int = 0
    ) -> tuple[EspSa, Owner]:
        """SA for the ESP packet at ``offset``; EspMalformed / EspUnknownSpi otherwise."""
        spi = spi_of(packet, offset)
        entry = self._by_spi.get(spi)
        if entry is None:
            raise EspUnknownSpi(spi)
        return entry

    def __contains__(self, spi: int) -> bool:
        return spi in self._by_spi

    def __len__(self) -> int:
        return len(self._by_spi)

    def spis(self) -> list[int]:
        return list(self._by_spi)
