"""AgentX sub-agent for net-snmp: STAMP-SUITE-MIB values read live at query time.

The sub-agent runs an asyncio loop in a background thread, so the reflector's and the
sender's own loops are untouched.  It registers its role's subtree under our
enterprise arc 1.3.6.1.4.1.65134 (reflector .1.1, sender .1.2, so both roles can run
on one host), answers Get, GetNext and GetBulk, pings the master, reconnects with
backoff when snmpd restarts, and says Close on shutdown.  If the master is absent the
program carries on and says so once.
"""

from __future__ import annotations

import asyncio
import bisect
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from ..say import say
from . import agentx as ax
from .loop import LoopThread

ENTERPRISE = (1, 3, 6, 1, 4, 1, 65134)
REFLECTOR_SUBTREE = ENTERPRISE + (1, 1)
SENDER_SUBTREE = ENTERPRISE + (1, 2)
Objects = list[tuple[ax.OID, int, object]]  # (OID, VarType, value), any order
# Values are read at query time.  Only a large view (many sessions) is kept as a snapshot
# for up to a second, so walking a big table stays fast and consistent.
LARGE_VIEW = 1000
SNAPSHOT_TTL_S = 1.0
PING_INTERVAL_S = 10.0
RESPONSE_TIMEOUT_S = 5.0
BACKOFF_START_S, BACKOFF_MAX_S = 0.25, 8.0


class MibView:
    """Sorted objects for Get/GetNext lookups, built from a live provider."""

    def __init__(self, provider: Callable[[], Objects]) -> None:
        self._provider = provider
        self._oids: list[ax.OID] = []
        self._values: list[tuple[int, object]] = []
        self._built = 0.0

    def _refresh(self) -> None:
        now = time.monotonic()
        if len(self._oids) > LARGE_VIEW and now - self._built < SNAPSHOT_TTL_S:
            return
        objs = sorted(self._provider())
        self._oids = [o for o, _, _ in objs]
        self._values = [(t, v) for _, t, v in objs]
        self._built = now

    def get(self, oid: ax.OID) -> tuple[int, object]:
        self._refresh()
        i = bisect.bisect_left(self._oids, oid)
        if i < len(self._oids) and self._oids[i] == oid:
            return self._values[i]
        # Our instances are one sub-identifier (.0, or a table index) after the object's OID:
        # an object we have, without this instance, is noSuchInstance; otherwise noSuchObject.
        if any(len(oid) >= len(o) and oid[:len(o) - 1] == o[:-1] for o in self._oids[max(0, i - 1):i + 1]):
            return ax.VarType.NO_SUCH_INSTANCE, None
        return ax.VarType.NO_SUCH_OBJECT, None

    def next(self, start: ax.OID, include: bool, end: ax.OID) -> tuple[ax.OID, int, object]:
        self._refresh()
        i = (bisect.bisect_left if include else bisect.bisect_right)(self._oids, start)
        if i < len(self._oids) and (not end or self._oids[i] < end):
            return (self._oids[i], *self._values[i])
        return start, ax.VarType.END_OF_MIB_VIEW, None

    def answer(self, header: ax.Header, payload: bytes) -> bytes:
        ranges, non_repeaters, max_repetitions = ax.parse_request(header, payload)
        binds: list[bytes] = []
        if header.type == ax.PduType.GET:
            for start, _, _ in ranges:
                binds.append(ax.encode_varbind(start, *self.get(start)))
        elif header.type == ax.PduType.GETNEXT:
            for start, include, end in ranges:
                binds.append(ax.encode_varbind(*self.next(start, include, end)))
        else:  # GetBulk (RFC 2741 §7.2.3.3)
            for start, include, end in ranges[:non_repeaters]:
                binds.append(ax.encode_varbind(*self.next(start, include, end)))
            repeaters = list(ranges[non_repeaters:])
            for _ in range(max_repetitions):
                if not repeaters:
                    break
                following = []
                for start, include, end in repeaters:
                    oid, vtype, value = self.next(start, include, end)
                    binds.append(ax.encode_varbind(oid, vtype, value))
                    following.append((oid, False, end))
                repeaters = following
        return ax.response_pdu(header, binds)


class SubAgent(LoopThread):
    thread_name = "agentx"

    def __init__(self, socket_spec: str, subtree: ax.OID, provider: Callable[[], Objects], description: str,
                 log: TextIO | None = None) -> None:
        super().__init__()
        self.socket_spec = socket_spec
        self.subtree = subtree
        self.view = MibView(provider)
        self.description = description
        self.log = log or sys.stderr
        self.connected = threading.Event()
        self.registrations = 0
        self.oversized_pdus = 0  # sessions closed for a PDU over agentx.MAX_PAYLOAD
        self._warned = False
        self._writer: asyncio.StreamWriter | None = None
        self._session_id = 0
        self._packet_id = 0
        self._pending: dict[int, asyncio.Future] = {}

    # -- the connection ---------------------------------------------------------------
    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        spec = self.socket_spec
        if spec.startswith("tcp:"):
            host, _, port = spec[4:].rpartition(":")
            return await asyncio.open_connection(host or "localhost", int(port))
        return await asyncio.open_unix_connection(spec)

    async def main(self) -> None:
        backoff = BACKOFF_START_S
        while not self.stopping.is_set():
            try:
                reader, writer = await self._connect()
            except OSError as exc:
                if not self._warned:
                    self._warned = True
                    say(f"warning: SNMP: AgentX master {self.socket_spec} unreachable "
                        f"({exc.strerror or exc}); measuring on, retrying in the background", self.log)
                await self._sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            self._writer = writer
            try:
                await self._session(reader, writer)
                backoff = BACKOFF_START_S
            except ax.OversizedPdu as exc:
                self.oversized_pdus += 1
                if self.oversized_pdus == 1:  # said once: a hostile master could repeat it forever
                    say(f"warning: SNMP: {exc} from the AgentX master; session closed, reconnecting "
                        f"(said once)", self.log)
            except (OSError, ax.AgentXError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
                if self.connected.is_set():
                    say(f"warning: SNMP: lost the AgentX master ({type(exc).__name__}); reconnecting", self.log)
            finally:
                self.connected.clear()
                for fut in self._pending.values():
                    fut.cancel()
                self._pending.clear()
                writer.close()
            if not self.stopping.is_set():
                await self._sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._session_id = 0
        reading = asyncio.ensure_future(self._read_loop(reader))
        try:
            resp = await self._request(ax.open_pdu(self.subtree, self.description, self._next_packet_id()), reading)
            if resp.error:
                raise ax.AgentXError(f"Open refused, error {resp.error}")
            resp = await self._request(ax.register_pdu(self._session_id, self.subtree, self._next_packet_id()),
                                       reading)
            if resp.error:
                raise ax.AgentXError(f"Register refused, error {resp.error}")
            self.registrations += 1
            self.connected.set()
            if self._warned:
                say(f"SNMP: registered with the AgentX master {self.socket_spec}", self.log)
            while not self.stopping.is_set():
                await self._idle(reading)
                if self.stopping.is_set():
                    break
                await self._request(ax.ping_pdu(self._session_id, self._next_packet_id()), reading)
            await self._request(ax.close_pdu(self._session_id, self._next_packet_id()), reading)
        finally:
            reading.cancel()
            if reading.done() and not reading.cancelled() and reading.exception():
                raise reading.exception()

    async def _idle(self, reading: asyncio.Future) -> None:
        """Wait for the next ping, a stop, or the end of the reading (an error the master
        caused: the session ends at once, not at the next ping)."""
        stopping = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({reading, stopping}, timeout=PING_INTERVAL_S, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if reading.done():
            raise reading.exception() or ax.AgentXError("the master stopped talking")

    def _next_packet_id(self) -> int:
        self._packet_id = (self._packet_id + 1) & 0xFFFF_FFFF
        return self._packet_id

    async def _request(self, pdu: bytes, reading: asyncio.Future) -> ax.Response:
        packet_id = ax.parse_header(pdu).packet_id
        fut = asyncio.get_running_loop().create_future()
        self._pending[packet_id] = fut
        self._writer.write(pdu)
        await self._writer.drain()
        done, _ = await asyncio.wait({fut, reading}, timeout=RESPONSE_TIMEOUT_S,
                                     return_when=asyncio.FIRST_COMPLETED)
        if fut not in done:
            if reading in done and reading.exception():
                raise reading.exception()
            raise asyncio.TimeoutError("no AgentX response")
        return fut.result()

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        while True:
            header = ax.parse_header(await reader.readexactly(ax.HEADER_LEN))
            payload = await reader.readexactly(header.payload_length)
            if header.type == ax.PduType.RESPONSE:
                resp = ax.parse_response(header, payload)
                if header.packet_id in self._pending:
                    if not self._session_id:
                        self._session_id = header.session_id
                    self._pending.pop(header.packet_id).set_result(resp)
                continue
            if header.type in (ax.PduType.GET, ax.PduType.GETNEXT, ax.PduType.GETBULK):
                try:
                    out = self.view.answer(header, payload)
                except ax.AgentXError:
                    out = ax.response_pdu(header, [], ax.Error.PARSE_ERROR)
            elif header.type == ax.PduType.CLOSE:
                raise ax.AgentXError("the master closed the session")
            elif header.type in (ax.PduType.TESTSET, ax.PduType.COMMITSET, ax.PduType.UNDOSET,
                                 ax.PduType.CLEANUPSET):
                out = ax.response_pdu(header, [], ax.Error.NOT_WRITABLE if header.type == ax.PduType.TESTSET else 0)
            else:
                continue
            self._writer.write(out)
            await self._writer.drain()
