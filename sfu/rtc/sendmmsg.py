"""Batched sends on one UDP socket with sendmmsg(2), where the platform has it.

Python's socket module has no sendmmsg, so it is called through ctypes on the C library. A
packet fanned out to N viewers of a shared port becomes N entries of one batch, sent by one
system call when the event loop next turns (or when the batch is full), instead of N calls of
`sendto` each with asyncio's and the socket module's per-call work.

Datagrams are copied into preallocated slots (payload and socket address), so `add()` does no
ctypes call and allocates nothing. `add_srtp()` goes one step further for the forwarding path:
header and payload are copied into the slot and SRTP-protected there, in place, by one libsrtp
call, so a viewer's copy of a packet is never a Python object of its own. Where sendmmsg is
missing, `BatchSender.create` returns None and the caller sends with the socket's `sendto`.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import socket
import struct
import sys
from typing import Any, Protocol

log = logging.getLogger(__name__)

MAX_BATCH = 64
"""Datagrams per system call; a fuller batch is sent at once."""
SLOT_BYTES = 2048
"""Room for one datagram (SRTP stays under the path MTU; larger ones go through `sendto`)."""
SRTP_MAX_TRAILER_BYTES = 16 + 128
"""SRTP_MAX_TAG_LEN + SRTP_MAX_MKI_LEN (as pylibsrtp): what protecting may add to a packet."""
SRTP_MAX_PLAIN_BYTES = SLOT_BYTES - SRTP_MAX_TRAILER_BYTES
"""The largest RTP packet `add_srtp` protects (the limit of `sfu.rtc.transport`'s protector)."""
_NAME_BYTES = 28  # sizeof(struct sockaddr_in6), the larger of the two
_MAX_CACHED_ADDRESSES = 65536
_RETRY_LATER = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS)


class Fallback(Protocol):
    """Where datagrams go that a batch cannot take (the socket's plain `sendto`)."""

    def sendto(self, data: bytes, addr: tuple[str, int]) -> None: ...
    def get_write_buffer_size(self) -> int: ...
    def is_closing(self) -> bool: ...


class _IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [
        ("msg_name", ctypes.c_void_p),
        ("msg_namelen", ctypes.c_uint32),
        ("msg_iov", ctypes.POINTER(_IoVec)),
        ("msg_iovlen", ctypes.c_size_t),
        ("msg_control", ctypes.c_void_p),
        ("msg_controllen", ctypes.c_size_t),
        ("msg_flags", ctypes.c_int),
    ]


class _MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", _MsgHdr), ("msg_len", ctypes.c_uint)]


def _libc_sendmmsg() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    if not sys.platform.startswith("linux"):
        return None
    try:
        call = ctypes.CDLL(None, use_errno=True).sendmmsg
    except (AttributeError, OSError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    call.restype = ctypes.c_int
    return call


def sockaddr(family: int, addr: tuple[str, int]) -> bytes:
    """`addr` as the C `struct sockaddr_in` (or `_in6`) of a socket of `family`."""
    host, port = addr[0], addr[1]
    if family == socket.AF_INET:
        return (
            struct.pack("=H", family) + struct.pack("!H", port) + socket.inet_aton(host) + bytes(8)
        )
    packed = socket.inet_pton(socket.AF_INET6, host)
    return struct.pack("=H", family) + struct.pack("!HI", port, 0) + packed + bytes(4)


class BatchSender:
    """Collects datagrams for one socket and sends them with one sendmmsg(2) per batch.

    Order is kept: when asyncio's transport already holds datagrams the socket refused
    (EAGAIN), a batch goes through the transport too, and the rest of a batch the socket
    refuses is handed to it as well (it queues and sends them when the socket is writable).
    A datagram the system refuses for another reason is dropped, as `sendto` would report it.
    """

    def __init__(
        self,
        sock: socket.socket,
        transport: Fallback,
        loop: asyncio.AbstractEventLoop,
        call: ctypes._CFuncPtr,  # type: ignore[name-defined]
    ) -> None:
        self._fd = sock.fileno()
        self._family = sock.family
        self._transport = transport
        self._loop = loop
        self._call = call
        self._data = ctypes.create_string_buffer(MAX_BATCH * SLOT_BYTES)
        self._names = ctypes.create_string_buffer(MAX_BATCH * _NAME_BYTES)
        self._iovecs = (_IoVec * MAX_BATCH)()
        self._messages = (_MMsgHdr * MAX_BATCH)()
        name_length = 16 if self._family == socket.AF_INET else _NAME_BYTES
        data_base, names_base = ctypes.addressof(self._data), ctypes.addressof(self._names)
        for index in range(MAX_BATCH):
            self._iovecs[index].iov_base = data_base + index * SLOT_BYTES
            header = self._messages[index].msg_hdr
            header.msg_iov = ctypes.pointer(self._iovecs[index])
            header.msg_iovlen = 1
            header.msg_name = names_base + index * _NAME_BYTES
            header.msg_namelen = name_length
        self._base = ctypes.addressof(self._messages)
        self._stride = ctypes.sizeof(_MMsgHdr)
        self._data_view = memoryview(self._data).cast("B")
        self._names_view = memoryview(self._names).cast("B")
        # iov_len of slot i is _lengths[i * _length_stride + _length_offset]
        size_t = ctypes.sizeof(ctypes.c_size_t)
        self._lengths = memoryview(self._iovecs).cast("B").cast("Q" if size_t == 8 else "I")
        self._length_stride = ctypes.sizeof(_IoVec) // size_t
        self._length_offset = _IoVec.iov_len.offset // size_t
        # iov_len of slot i, as an index into _lengths
        self._length_index = [
            index * self._length_stride + self._length_offset for index in range(MAX_BATCH)
        ]
        # for add_srtp: libsrtp's protect, each slot's address as its pointer, the length
        # in and out; touches pylibsrtp._binding (its cffi module), as sfu.rtc.transport does
        from pylibsrtp._binding import ffi, lib

        self._srtp_protect = lib.srtp_protect
        self._srtp_ok = lib.srtp_err_status_ok
        self._slot_pointers = [
            ffi.cast("char *", data_base + index * SLOT_BYTES) for index in range(MAX_BATCH)
        ]
        self._srtp_length = ffi.new("int *")
        self._slot_views = [
            self._data_view[index * SLOT_BYTES : (index + 1) * SLOT_BYTES]
            for index in range(MAX_BATCH)
        ]
        self._addrs: list[tuple[str, int]] = [("", 0)] * MAX_BATCH
        self._sockaddrs: dict[tuple[str, int], bytes] = {}
        self._count = 0
        self._scheduled = False
        self.pending_bytes = 0
        self.batches = 0
        self.datagrams = 0

    @classmethod
    def create(
        cls,
        sock: socket.socket,
        transport: Fallback,
        loop: asyncio.AbstractEventLoop,
    ) -> BatchSender | None:
        """A sender for `sock`, or None where the C library has no sendmmsg."""
        call = _libc_sendmmsg()
        if call is None:
            log.info("no sendmmsg on this platform: media is sent with sendto")
            return None
        return cls(sock, transport, loop, call)

    def add(self, data: bytes, addr: tuple[str, int]) -> None:
        """Queue one datagram; it leaves when the event loop next turns, or with a full batch."""
        size = len(data)
        name = self._sockaddrs.get(addr) or self._sockaddr(addr)
        if name is None or size > SLOT_BYTES:
            self.flush()  # what was queued before leaves first
            self._transport.sendto(data, addr)
            return
        index = self._count
        offset = index * SLOT_BYTES
        self._data_view[offset : offset + size] = data
        name_offset = index * _NAME_BYTES
        self._names_view[name_offset : name_offset + len(name)] = name
        self._lengths[self._length_index[index]] = size
        self._addrs[index] = addr
        self._count = index + 1
        self.pending_bytes += size
        if index + 1 == MAX_BATCH:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def add_srtp(
        self, header: bytes, payload: bytes, srtp: Any, name: bytes, addr: tuple[str, int]
    ) -> bool:
        """Queue RTP packet `header + payload` for `addr` (whose `sockaddr_for` is `name`),
        SRTP-protected in its slot by the libsrtp session `srtp` (its `srtp_t`).

        False if the packet is larger than `SRTP_MAX_PLAIN_BYTES` or libsrtp refused it:
        nothing is queued then. As `add()`, it leaves when the event loop next turns, or with
        a full batch.
        """
        split = len(header)
        size = split + len(payload)
        if size > SRTP_MAX_PLAIN_BYTES:
            return False
        index = self._count
        slot = self._slot_views[index]
        slot[:split] = header
        slot[split:size] = payload
        length = self._srtp_length
        length[0] = size
        if self._srtp_protect(srtp, self._slot_pointers[index], length) != self._srtp_ok:
            return False
        size = length[0]
        if self._addrs[index] is not addr:  # a fan-out often fills a slot for the same viewer
            name_offset = index * _NAME_BYTES
            self._names_view[name_offset : name_offset + len(name)] = name
            self._addrs[index] = addr
        self._lengths[self._length_index[index]] = size
        self._count = index + 1
        self.pending_bytes += size
        if index + 1 == MAX_BATCH:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)
        return True

    def sockaddr_for(self, addr: tuple[str, int]) -> bytes | None:
        """`addr` as this socket's C socket address (cached), or None if it is not one."""
        return self._sockaddrs.get(addr) or self._sockaddr(addr)

    def _sockaddr(self, addr: tuple[str, int]) -> bytes | None:
        try:
            name = sockaddr(self._family, addr)
        except (OSError, ValueError, TypeError, struct.error):
            return None
        if len(self._sockaddrs) >= _MAX_CACHED_ADDRESSES:
            self._sockaddrs.clear()
        self._sockaddrs[addr] = name
        return name

    def flush(self) -> None:
        """Send what is queued now."""
        self._scheduled = False
        count = self._count
        if not count:
            return
        self._count = 0
        self.pending_bytes = 0
        self.batches += 1
        self.datagrams += count
        if self._transport.is_closing():
            return
        if self._transport.get_write_buffer_size():
            self._through_transport(0, count)  # behind what asyncio holds, in order
            return
        start = 0
        while start < count:
            sent = self._call(self._fd, self._base + start * self._stride, count - start, 0)
            if sent > 0:
                start += sent
                continue
            error = ctypes.get_errno() if sent < 0 else 0
            if error == errno.EINTR:
                continue
            if error in _RETRY_LATER:
                self._through_transport(start, count)
                return
            start += 1  # this datagram was refused (e.g. an unreachable address): dropped

    def _through_transport(self, start: int, count: int) -> None:
        data, lengths = self._data_view, self._lengths
        stride, offset = self._length_stride, self._length_offset
        for index in range(start, count):
            size = lengths[index * stride + offset]
            begin = index * SLOT_BYTES
            self._transport.sendto(bytes(data[begin : begin + size]), self._addrs[index])
