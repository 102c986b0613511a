"""The dm-log-userspace wire format, once, for the Python test harnesses.

A request or reply travels as one netlink datagram: nlmsghdr (16 bytes), cn_msg (20 bytes), then
struct dm_ulog_request (160 bytes) and `data_size` bytes of payload. This is exactly what the daemon's
`--kernel-socket` test transport carries over a Unix SOCK_SEQPACKET socket. The layout is taken from the
uapi headers (linux/netlink.h, linux/connector.h, linux/dm-log-userspace.h), independently of the Swift
codec, so a test built on it checks that codec rather than repeating it.

Users: Tests/host/daemon_socket_test.py and Tests/cluster/ulog.py (and through it the multinode suite).
They add this directory to sys.path from their own location. Pure Python 3 standard library.

Exports:
- request types: `DM_ULOG_CTR` (1) ... `DM_ULOG_IS_REMOTE_RECOVERING` (17), the short names `CTR` ...
  `IS_REMOTE_RECOVERING` for the same numbers, and `TYPE_NAMES` (number -> short name);
- `PROTOCOL_VERSION` (DM_ULOG_REQUEST_VERSION, 3), `CN_IDX_DM` (7), `CN_VAL_DM_USERSPACE_LOG` (1), `CB_ID`,
  `NLMSG_DONE` (3), and the Linux errno values the `error` field carries negated;
- the structs `NLMSG`, `CNMSG`, `REQUEST` and the offsets/sizes `REQUEST_OFFSET`, `HEADER_BYTES`,
  `REQUEST_TYPE_OFFSET`;
- `encode_frame`, `encode_reply`, `decode_reply`, `decode_request`, `FramingError`;
- payloads: `u64s`, `region_sync`, `i64`, `decode_args`, `decode_answer`, and the structs `U64`, `I64`,
  `REGION_SYNC`, `RESYNC_WORK`, `REMOTE_RECOVERING`.
"""
import struct

# ------------------------------------------------------------ constants ----

# enum of request types in linux/dm-log-userspace.h
DM_ULOG_CTR = 1
DM_ULOG_DTR = 2
DM_ULOG_PRESUSPEND = 3
DM_ULOG_POSTSUSPEND = 4
DM_ULOG_RESUME = 5
DM_ULOG_GET_REGION_SIZE = 6
DM_ULOG_IS_CLEAN = 7
DM_ULOG_IN_SYNC = 8
DM_ULOG_FLUSH = 9
DM_ULOG_MARK_REGION = 10
DM_ULOG_CLEAR_REGION = 11
DM_ULOG_GET_RESYNC_WORK = 12
DM_ULOG_SET_REGION_SYNC = 13
DM_ULOG_GET_SYNC_COUNT = 14
DM_ULOG_STATUS_INFO = 15
DM_ULOG_STATUS_TABLE = 16
DM_ULOG_IS_REMOTE_RECOVERING = 17

# The short names the harnesses use.
CTR, DTR, PRESUSPEND, POSTSUSPEND, RESUME = DM_ULOG_CTR, DM_ULOG_DTR, DM_ULOG_PRESUSPEND, DM_ULOG_POSTSUSPEND, DM_ULOG_RESUME
GET_REGION_SIZE, IS_CLEAN, IN_SYNC, FLUSH = DM_ULOG_GET_REGION_SIZE, DM_ULOG_IS_CLEAN, DM_ULOG_IN_SYNC, DM_ULOG_FLUSH
MARK, CLEAR, GET_RESYNC_WORK = DM_ULOG_MARK_REGION, DM_ULOG_CLEAR_REGION, DM_ULOG_GET_RESYNC_WORK
SET_REGION_SYNC, GET_SYNC_COUNT = DM_ULOG_SET_REGION_SYNC, DM_ULOG_GET_SYNC_COUNT
STATUS_INFO, STATUS_TABLE, IS_REMOTE_RECOVERING = DM_ULOG_STATUS_INFO, DM_ULOG_STATUS_TABLE, DM_ULOG_IS_REMOTE_RECOVERING

TYPE_NAMES = {CTR: "CTR", DTR: "DTR", PRESUSPEND: "PRESUSPEND", POSTSUSPEND: "POSTSUSPEND", RESUME: "RESUME",
              GET_REGION_SIZE: "GET_REGION_SIZE", IS_CLEAN: "IS_CLEAN", IN_SYNC: "IN_SYNC", FLUSH: "FLUSH",
              MARK: "MARK", CLEAR: "CLEAR", GET_RESYNC_WORK: "GET_RESYNC_WORK",
              SET_REGION_SYNC: "SET_REGION_SYNC", GET_SYNC_COUNT: "GET_SYNC_COUNT", STATUS_INFO: "STATUS_INFO",
              STATUS_TABLE: "STATUS_TABLE", IS_REMOTE_RECOVERING: "IS_REMOTE_RECOVERING"}

PROTOCOL_VERSION = 3            # DM_ULOG_REQUEST_VERSION
CN_IDX_DM = 7                   # linux/connector.h: the device-mapper connector
CN_VAL_DM_USERSPACE_LOG = 1
CB_ID = (CN_IDX_DM, CN_VAL_DM_USERSPACE_LOG)
NLMSG_DONE = 3                  # nlmsg_type of every connector message

# Linux errno values; the `error` field carries them negated (-ESRCH: the daemon does not know the log).
ESRCH, EIO, EAGAIN, EBUSY, EINVAL = 3, 5, 11, 16, 22

# ---------------------------------------------------------------- frames ----

NLMSG = struct.Struct("=IHHII")          # nlmsghdr: len, type, flags, seq, pid (16 bytes)
CNMSG = struct.Struct("=IIIIHH")         # cn_msg: id.idx, id.val, seq, ack, len, flags (20 bytes)
# dm_ulog_request: u64 luid, char uuid[129], 3 pad bytes, u32 version, i32 error, u32 seq, u32 request_type,
# u32 data_size (160 bytes)
REQUEST = struct.Struct("=Q129s3xIiIII")
assert (NLMSG.size, CNMSG.size, REQUEST.size) == (16, 20, 160)
REQUEST_OFFSET = NLMSG.size + CNMSG.size                                   # 36: dm_ulog_request in a datagram
HEADER_BYTES = REQUEST_OFFSET + REQUEST.size                               # 196: the payload in a datagram
REQUEST_TYPE_OFFSET = REQUEST_OFFSET + struct.calcsize("=Q129s3xIiI")      # 188: request_type in a datagram


class FramingError(Exception):
    """A datagram whose headers are too short or disagree with each other or with the connector id."""


def encode_frame(luid, uuid, rtype, payload=b"", version=PROTOCOL_VERSION, seq=1, cb=CB_ID, error=0):
    """Encodes one request (or reply) datagram exactly as the kernel's netlink connector delivers it.

    `uuid` is a str (or bytes), NUL-padded to 129 bytes; `cb` is the connector id (idx, val); the netlink
    header has type NLMSG_DONE and zero flags, seq and pid, the cn_msg zero seq, ack and flags.
    """
    raw_uuid = uuid if isinstance(uuid, (bytes, bytearray)) else uuid.encode()
    body = REQUEST.pack(luid, raw_uuid, version, error, seq, rtype, len(payload)) + payload
    cn = CNMSG.pack(cb[0], cb[1], 0, 0, len(body), 0)
    return NLMSG.pack(NLMSG.size + CNMSG.size + len(body), NLMSG_DONE, 0, 0, 0) + cn + body


def encode_reply(request, error=0, payload=b""):
    """Encodes the daemon's reply to a decoded request (a dict from `decode_request`): the request's
    header echoed, with `error` and `payload` (for fake daemons in self-tests)."""
    return encode_frame(request["luid"], request["uuid"], request["type"], payload, version=request["version"],
                        seq=request["seq"], error=error)


def _decode_header(data):
    if len(data) < HEADER_BYTES:
        raise FramingError(f"datagram of {len(data)} bytes is shorter than its headers")
    luid, uuid, version, error, seq, rtype, size = REQUEST.unpack_from(data, REQUEST_OFFSET)
    return {"luid": luid, "uuid": uuid.rstrip(b"\0").decode(errors="replace"), "version": version, "error": error,
            "seq": seq, "type": rtype, "payload": bytes(data[HEADER_BYTES:HEADER_BYTES + size])}, size


def decode_reply(data):
    """Decodes one reply datagram into a dict with luid, uuid (str, trailing NULs stripped), version,
    error, seq, type and payload (bytes). Raises FramingError if it is shorter than its headers, if the
    netlink length, the datagram's length, the cn_msg length and data_size disagree, or if the netlink
    type or connector id is not the device-mapper log's."""
    reply, size = _decode_header(data)
    nl_len, nl_type = struct.unpack_from("=IH", data, 0)
    idx, val, _, _, cn_len = struct.unpack_from("=IIIIH", data, NLMSG.size)
    if not nl_len == len(data) == REQUEST_OFFSET + cn_len == HEADER_BYTES + size:
        raise FramingError(f"reply lengths disagree: nl {nl_len}, datagram {len(data)}, cn {cn_len}, data_size {size}")
    if (nl_type, idx, val) != (NLMSG_DONE, CN_IDX_DM, CN_VAL_DM_USERSPACE_LOG):
        raise FramingError(f"reply framing: nlmsg_type {nl_type}, cb_id {idx}/{val}")
    return reply


def decode_request(data):
    """Decodes a request datagram as a daemon sees it (same dict as `decode_reply`), checking only that
    the headers are there: for fake daemons in self-tests, whose input comes from `encode_frame`."""
    return _decode_header(data)[0]


# -------------------------------------------------------------- payloads ----

U64 = struct.Struct("=Q")                # a region (IS_CLEAN, IN_SYNC, IS_REMOTE_RECOVERING), a count, a size
I64 = struct.Struct("=q")                # IS_CLEAN / IN_SYNC answers
REGION_SYNC = struct.Struct("=Qq")       # SET_REGION_SYNC request: region, in_sync
RESYNC_WORK = struct.Struct("=qQ")       # GET_RESYNC_WORK reply: found, region
REMOTE_RECOVERING = struct.Struct("=qQ")  # IS_REMOTE_RECOVERING reply: is_recovering, in_sync_hint


def u64s(*values):
    """Packs regions as host-order u64s (the MARK, CLEAR and FLUSH payload; one for IS_CLEAN, IN_SYNC and
    IS_REMOTE_RECOVERING)."""
    return b"".join(U64.pack(v) for v in values)


def region_sync(region, in_sync):
    """The SET_REGION_SYNC payload: u64 region, i64 in_sync."""
    return REGION_SYNC.pack(region, in_sync)


def i64(payload):
    """Unpacks an 8-byte payload as a host-order i64 (raises struct.error on any other size)."""
    return I64.unpack(payload)[0]


def decode_args(rtype, payload):
    """A request's arguments as a tuple, for records and checkers: the regions of MARK/CLEAR/FLUSH, the
    region of IS_CLEAN/IN_SYNC/IS_REMOTE_RECOVERING, (region, in_sync) of SET_REGION_SYNC, the CTR string;
    () otherwise or when the payload is too short."""
    if rtype in (MARK, CLEAR, FLUSH):
        return tuple(U64.unpack_from(payload, i)[0] for i in range(0, len(payload) - len(payload) % 8, 8))
    if rtype in (IS_CLEAN, IN_SYNC, IS_REMOTE_RECOVERING) and len(payload) >= 8:
        return (U64.unpack_from(payload)[0],)
    if rtype == SET_REGION_SYNC and len(payload) >= 16:
        return REGION_SYNC.unpack_from(payload)
    if rtype == CTR:
        return (payload.rstrip(b"\0").decode(errors="replace"),)
    return ()


def decode_answer(rtype, payload):
    """A successful reply's data by request type: an int for IS_CLEAN/IN_SYNC (i64) and
    GET_SYNC_COUNT/GET_REGION_SIZE (u64), a pair for GET_RESYNC_WORK and IS_REMOTE_RECOVERING, a str for
    STATUS_INFO/STATUS_TABLE/CTR; None when the type has no data or the payload has the wrong size."""
    try:
        if rtype in (IS_CLEAN, IN_SYNC, GET_SYNC_COUNT, GET_REGION_SIZE):
            if len(payload) != 8:
                return None
            return (I64 if rtype in (IS_CLEAN, IN_SYNC) else U64).unpack(payload)[0]
        if rtype == GET_RESYNC_WORK:
            return RESYNC_WORK.unpack(payload) if len(payload) == 16 else None
        if rtype == IS_REMOTE_RECOVERING:
            return REMOTE_RECOVERING.unpack(payload) if len(payload) == 16 else None
        if rtype in (STATUS_INFO, STATUS_TABLE, CTR):
            return payload.decode(errors="replace")
    except struct.error:
        return None
    return None
