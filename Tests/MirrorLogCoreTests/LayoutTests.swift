import CULogLayout
import Testing
@testable import MirrorLogCore

/// Our WireLayout constants against the kernel's uapi structs, as compiled by the C compiler.
@Suite struct LayoutTests {
    let c = culog_get_layout()

    @Test func hostIsLittleEndian() {
        // The golden vectors and the on-disk format tests assume it; every Linux target we ship is LE.
        #expect(UInt16(1).littleEndian == 1 && UInt16(1).bigEndian == 256)
        #expect(le(UInt32(0x0102_0304)) == [4, 3, 2, 1])
    }

    @Test func headerSizes() {
        #expect(WireLayout.netlinkHeaderSize == c.nlmsghdr_size)
        #expect(WireLayout.connectorHeaderSize == c.cn_msg_size)
        #expect(WireLayout.requestHeaderSize == c.request_size)
        #expect(WireLayout.framingSize == c.nlmsghdr_size + c.cn_msg_size + c.request_size)
        #expect(WireLayout.framingSize == 196)
    }

    @Test func connectorMessageOffsets() {
        #expect(WireLayout.cnIndexOffset == c.cn_msg_id_idx)
        #expect(WireLayout.cnValueOffset == c.cn_msg_id_val)
        #expect(WireLayout.cnSeqOffset == c.cn_msg_seq)
        #expect(WireLayout.cnAckOffset == c.cn_msg_ack)
        #expect(WireLayout.cnLenOffset == c.cn_msg_len)
        #expect(WireLayout.cnFlagsOffset == c.cn_msg_flags)
    }

    @Test func requestOffsets() {
        #expect(WireLayout.luidOffset == c.luid)
        #expect(WireLayout.uuidOffset == c.uuid)
        #expect(WireLayout.uuidFieldSize == c.uuid_size)
        #expect(WireLayout.versionOffset == c.version)
        #expect(WireLayout.errorOffset == c.error)
        #expect(WireLayout.seqOffset == c.seq)
        #expect(WireLayout.requestTypeOffset == c.request_type)
        #expect(WireLayout.dataSizeOffset == c.data_size)
        // The payload starts right after data_size (the struct has no trailing padding).
        #expect(WireLayout.dataSizeOffset + 4 == c.request_size)
    }

    @Test func connectorIDs() {
        #expect(WireLayout.connectorIndex == c.cn_idx_dm)
        #expect(WireLayout.connectorValue == c.cn_val_dm_userspace_log)
    }

    @Test func protocolVersionAndMask() {
        #expect(WireLayout.newestProtocolVersion == c.request_version)
        #expect(RequestType.mask == c.request_mask)
    }

    @Test func allSeventeenRequestTypes() {
        let cTypes = withUnsafeBytes(of: c.request_types) { Array($0.bindMemory(to: UInt32.self)) }
        #expect(cTypes.count == 17)
        let ours: [RequestType] = [
            .constructor, .destructor, .presuspend, .postsuspend, .resume,
            .getRegionSize, .isClean, .inSync, .flush, .markRegion,
            .clearRegion, .getResyncWork, .setRegionSync, .getSyncCount,
            .statusInfo, .statusTable, .isRemoteRecovering,
        ]
        #expect(RequestType.allCases.count == 17)
        #expect(Set(ours.map(\.rawValue)) == Set(RequestType.allCases.map(\.rawValue)))
        for (type, value) in zip(ours, cTypes) {
            #expect(type.rawValue == value, "\(type)")
        }
    }

    @Test func requestTypeNames() {
        #expect(RequestType.markRegion.description == "MARK_REGION")
        #expect(RequestType.isRemoteRecovering.description == "IS_REMOTE_RECOVERING")
        #expect(Set(RequestType.allCases.map(\.description)).count == 17)
    }
}
