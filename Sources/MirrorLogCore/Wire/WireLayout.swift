/// Sizes and offsets of the three headers that frame every kernel message:
/// `nlmsghdr` (16 bytes) + `cn_msg` (20 bytes) + `dm_ulog_request` (160 bytes) + payload.
///
/// These constants are checked against the C structs of the uapi headers by the layout tests.
public enum WireLayout {
    /// `sizeof(struct nlmsghdr)`.
    public static let netlinkHeaderSize = 16
    /// `sizeof(struct cn_msg)`.
    public static let connectorHeaderSize = 20
    /// `sizeof(struct dm_ulog_request)`.
    public static let requestHeaderSize = 160
    /// Bytes before the payload.
    public static let framingSize = netlinkHeaderSize + connectorHeaderSize + requestHeaderSize

    /// `DM_UUID_LEN`: the uuid field, NUL included.
    public static let uuidFieldSize = 129

    /// `CN_IDX_DM`: connector index and multicast group of device-mapper.
    public static let connectorIndex: UInt32 = 7
    /// `CN_VAL_DM_USERSPACE_LOG`.
    public static let connectorValue: UInt32 = 1
    /// `NLMSG_DONE`: the netlink message type the connector uses.
    public static let netlinkMessageTypeDone: UInt16 = 3

    /// `CONNECTOR_MAX_MSG_SIZE`: the largest connector payload (cn_msg.len) the kernel accepts.
    public static let connectorMaxMessageSize = 16384
    /// The largest reply payload the kernel can take (its preallocated 512-byte buffer minus the header... as
    /// described in REFERENCE.md section 1).
    public static let maxReplyPayload = 332

    /// `DM_ULOG_REQUEST_VERSION` of the newest protocol this daemon speaks.
    public static let newestProtocolVersion: UInt32 = 3

    // Offsets inside struct dm_ulog_request.
    static let luidOffset = 0
    static let uuidOffset = 8
    static let versionOffset = 140
    static let errorOffset = 144
    static let seqOffset = 148
    static let requestTypeOffset = 152
    static let dataSizeOffset = 156

    // Offsets inside struct cn_msg.
    static let cnIndexOffset = 0
    static let cnValueOffset = 4
    static let cnSeqOffset = 8
    static let cnAckOffset = 12
    static let cnLenOffset = 16
    static let cnFlagsOffset = 18
}
