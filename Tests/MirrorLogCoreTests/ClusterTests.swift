import Testing
@testable import MirrorLogCore
import MirrorLogSimulation

/// A little kernel per simulated member: builds requests with increasing seq numbers.
struct SimKernel {
    var sim = SimulatedCluster()
    var seq: UInt32 = 0
    let uuid: String
    let luid: UInt64 = 7

    init(uuid: String = "LVM-cluster-test") { self.uuid = uuid }

    @discardableResult
    mutating func send(_ type: RequestType, _ payload: RequestPayload = .none, on member: MemberID, uuid: String? = nil, luid: UInt64? = nil) -> UInt32 {
        seq += 1
        sim.send(wire(makeRequest(type, payload, luid: luid ?? self.luid, uuid: uuid ?? self.uuid, seq: seq)), on: member)
        return seq
    }

    /// Sends, lets the cluster settle, and returns the reply.
    mutating func ask(_ type: RequestType, _ payload: RequestPayload = .none, on member: MemberID, uuid: String? = nil) -> Reply? {
        let s = send(type, payload, on: member, uuid: uuid)
        sim.settle()
        return sim.reply(of: member, seq: s)
    }

    mutating func flag(_ type: RequestType, _ region: UInt64, on member: MemberID) -> Bool? {
        guard let reply = ask(type, .region(region), on: member), case let .flag(value) = reply.payload else { return nil }
        return value
    }

    mutating func resyncWork(on member: MemberID) -> UInt64?? {
        guard let reply = ask(.getResyncWork, on: member), case let .resyncWork(region) = reply.payload else { return nil }
        return .some(region)
    }

    mutating func remoteRecovering(_ region: UInt64, on member: MemberID) -> (Bool, UInt64)? {
        guard let reply = ask(.isRemoteRecovering, .region(region), on: member), case let .remoteRecovering(r, hint) = reply.payload else { return nil }
        return (r, hint)
    }

    /// Starts `members`, each constructing and resuming the log.
    mutating func bringUp(_ members: [MemberID], table: String = "clustered-core 1024 nosync", length: UInt64 = 64 * 1024) {
        for member in members {
            sim.start(member)
            #expect(ask(.constructor, ctr("\(length) \(table)"), on: member)?.error == 0)
            #expect(ask(.resume, on: member) == .ok)
        }
    }

    func digests() -> Set<UInt64> {
        Set(sim.nodes.values.compactMap { node in node.logs.values.first?.replica.map(ReplicaSnapshot.digest) })
    }
}

let nodeA = MemberID(nodeID: 1, pid: 100)
let nodeB = MemberID(nodeID: 2, pid: 200)
let nodeC = MemberID(nodeID: 3, pid: 300)

@Suite("Clustered logs (simulated CPG)")
struct ClusterTests {
    @Test("three members share one state; a joiner gets it from exactly one member")
    func joinFromOneDonor() {
        var k = SimKernel()
        k.bringUp([nodeA, nodeB, nodeC])
        #expect(k.digests().count == 1)
        let senders = k.sim.notices.filter { $0.value.contains { $0.message.hasPrefix("sending the state") } }.map(\.key)
        #expect(senders == [nodeA])
        for member in [nodeA, nodeB, nodeC] {
            #expect(k.sim.nodes[member]!.logs.values.first!.replica!.members == [nodeA, nodeB, nodeC])
        }
    }

    @Test("a mark on one member is seen by every member's IS_CLEAN; clear makes it clean again")
    func marksAreReplicated() {
        var k = SimKernel()
        k.bringUp([nodeA, nodeB])
        #expect(k.ask(.markRegion, regions([5, 6]), on: nodeA) == .ok)
        #expect(k.flag(.isClean, 5, on: nodeB) == false)
        #expect(k.flag(.isClean, 7, on: nodeB) == true)
        #expect(k.ask(.markRegion, regions([5]), on: nodeB) == .ok)
        #expect(k.ask(.clearRegion, regions([5, 6]), on: nodeA) == .ok)
        #expect(k.flag(.isClean, 5, on: nodeA) == false, "still marked by B")
        #expect(k.flag(.isClean, 6, on: nodeA) == true)
        #expect(k.digests().count == 1)
    }

    @Test("resync work is spread: each member gets its own region, never the same one")
    func resyncWorkIsExclusive() {
        var k = SimKernel()
        k.bringUp([nodeA, nodeB, nodeC], table: "clustered-core 1024 sync", length: 8 * 1024)
        let a = k.resyncWork(on: nodeA)!
        let b = k.resyncWork(on: nodeB)!
        let c = k.resyncWork(on: nodeC)!
        #expect(a == 0 && b == 1 && c == 2)
        #expect(k.remoteRecovering(1, on: nodeA)?.0 == true)
        #expect(k.remoteRecovering(1, on: nodeB)?.0 == false)
        #expect(k.ask(.setRegionSync, .regionSync(region: 0, inSync: true), on: nodeA) == .ok)
        #expect(k.resyncWork(on: nodeA)! == 3)
    }

    @Test("a failed member's marks are held until recovery is done, then resynced first")
    func failedMemberRecovery() {
        var k = SimKernel()
        k.sim.quorum = QuorumView(quorate: true, nodes: [1, 2, 3])
        k.bringUp([nodeA, nodeB, nodeC], table: "clustered-core 1024 nosync", length: 16 * 1024)
        #expect(k.ask(.markRegion, regions([9, 12]), on: nodeB) == .ok)
        k.sim.crash(nodeB, reason: .nodeDown)
        k.sim.settle()
        // Node 2 is not fenced yet (the DLM has not granted its lock): its regions may be written.
        #expect(k.remoteRecovering(9, on: nodeA)! == (true, 9))
        #expect(k.flag(.isClean, 12, on: nodeC) == false)
        // Its node left the membership, so it may be on the surviving side of a split: state
        // changes of every kernel are held until done (reads are answered).
        let work = k.send(.getResyncWork, on: nodeA)
        let mark = k.send(.markRegion, regions([5]), on: nodeC)
        k.sim.settle()
        #expect(k.sim.reply(of: nodeA, seq: work) == nil)
        #expect(k.sim.reply(of: nodeC, seq: mark) == nil)
        // Node 2 is fenced, the DLM grants its lock: done; its regions are out of sync and resynced first.
        #expect(k.sim.recoveryRestarts.isEmpty)
        k.sim.purgeLocks(ofNode: 2)
        k.sim.settle()
        #expect(k.sim.reply(of: nodeC, seq: mark) == .ok)
        #expect(k.sim.reply(of: nodeA, seq: work)?.payload == .resyncWork(9))
        // The kernels saw the mirror in sync (in_sync_hint = region count): both survivors restart
        // their recovery with a suspend and resume, or they would never ask for resync work.
        #expect(Set(k.sim.recoveryRestarts.map(\.member)) == [nodeA, nodeC])
        #expect(k.ask(.getSyncCount, on: nodeA)?.payload == .count(14))
        #expect(k.resyncWork(on: nodeC)! == 12)
        #expect(k.ask(.clearRegion, regions([5]), on: nodeC) == .ok)
        #expect(k.ask(.setRegionSync, .regionSync(region: 9, inSync: true), on: nodeA) == .ok)
        #expect(k.ask(.setRegionSync, .regionSync(region: 12, inSync: true), on: nodeC) == .ok)
        #expect(k.ask(.getSyncCount, on: nodeC)?.payload == .count(16))
        #expect(k.digests().count == 1)
    }

    @Test("a failed recoverer's region is handed out again after done")
    func failedRecovererRegionIsReissued() {
        var k = SimKernel()
        k.bringUp([nodeA, nodeB], table: "clustered-core 1024 sync", length: 4 * 1024)
        #expect(k.resyncWork(on: nodeB)! == 0)
        k.sim.crash(nodeB, reason: .nodeDown)
        k.sim.purgeLocks(ofNode: 2)
        k.sim.settle()
        #expect(k.resyncWork(on: nodeA)! == 0)
    }

    @Test("fencing that never succeeds: no done ever comes, the failed member's regions stay held")
    func fencingNeverSucceeds() {
        var k = SimKernel()
        k.bringUp([nodeA, nodeB], length: 8 * 1024)
        #expect(k.ask(.markRegion, regions([3]), on: nodeB) == .ok)
        k.sim.crash(nodeB, reason: .nodeDown)
        let mark = k.send(.markRegion, regions([6]), on: nodeA)
        for _ in 0 ..< 20 { k.sim.settle() }
        #expect(k.sim.reply(of: nodeA, seq: mark) == nil)
        #expect(k.remoteRecovering(3, on: nodeA)?.0 == true)
        #expect(k.sim.nodes[nodeA]?.logs.values.first?.replica?.recoveryPending == true)
        #expect(k.sim.nodes[nodeA]?.fencing.watching[2] != nil, "the request on node 2's lock stays queued")
    }

    @Test("the DLM's grant may come before the configuration change that reports the failure")
    func grantBeforeConfigurationChange() {
        var k = SimKernel()
        k.bringUp([nodeA, nodeB], length: 8 * 1024)
        #expect(k.ask(.markRegion, regions([3]), on: nodeB) == .ok)
        k.sim.crash(nodeB, reason: .nodeDown)
        k.sim.purgeLocks(ofNode: 2)
        // The grant is delivered first (step() takes DLM events before CPG events).
        k.sim.step()
        #expect(k.sim.nodes[nodeA]?.fencing.proven.contains(nodeB) == true)
        k.sim.settle()
        #expect(k.sim.nodes[nodeA]?.logs.values.first?.replica?.recoveryPending == false)
        #expect(k.sim.nodes[nodeA]?.logs.values.first?.replica?.priority == [3])
        #expect(k.sim.nodes[nodeA]?.logs.values.first?.replica?.log.sync[3] == false)
    }

    @Test("a daemon of a rebooted node does not take over its predecessor's marks, and proves its old kernel gone")
    func rebootedNodeDoesNotAdopt() {
        var k = SimKernel()
        k.sim.fencingMode = .unfenced
        k.sim.quorum = QuorumView(quorate: true, nodes: [1, 2])
        k.bringUp([nodeA, nodeB], length: 8 * 1024)
        #expect(k.ask(.markRegion, regions([3]), on: nodeB) == .ok)
        k.sim.crash(nodeB, reason: .nodeDown)
        k.sim.settle()
        // Quorum still lists node 2 (no fencing): only its next boot proves the old kernel gone.
        #expect(k.sim.nodes[nodeA]?.logs.values.first?.replica?.recoveryPending == true)
        // The same pid as before the reboot (a daemon started at boot often gets it).
        let rebooted = MemberID(nodeID: 2, pid: 200)
        k.sim.start(rebooted, boot: 2)
        #expect(k.ask(.constructor, ctr("\(8 * 1024) clustered-core 1024 nosync", nul: true), on: rebooted) == .ok)
        #expect(k.ask(.resume, on: rebooted) == .ok)
        let replica = k.sim.nodes[nodeA]?.logs.values.first?.replica
        #expect(replica?.recoveryPending == false)
        #expect(replica?.log.marks.isHeld(3) == false, "the fresh kernel never marked region 3")
        #expect(replica?.log.sync[3] == false, "region 3 is resynced")
        #expect(k.digests().count == 1)
    }

    @Test("without a DLM, a clustered constructor is refused and says why")
    func noDLMRefusesClusteredLogs() {
        var k = SimKernel()
        k.sim.dlm.available = false
        k.sim.start(nodeA)
        #expect(k.ask(.constructor, ctr("\(8 * 1024) clustered-core 1024 nosync"), on: nodeA)?.error == -22)
        #expect(k.sim.notices[nodeA]?.contains { $0.message.contains("need the DLM") } == true)
    }

    @Test("clustered-disk: the recovery generation is recorded on the device, and a whole-cluster restart resumes from it")
    func generationSurvivesWholeClusterRestart() {
        var k = SimKernel()
        k.bringUp([nodeA, nodeB], table: "clustered-disk /dev/shared 1024", length: 8 * 1024)
        #expect(k.ask(.markRegion, regions([2]), on: nodeB) == .ok)
        #expect(k.ask(.flush, on: nodeB) == .ok)
        k.sim.crash(nodeB, reason: .nodeDown)
        k.sim.purgeLocks(ofNode: 2)
        k.sim.settle()
        #expect(k.sim.nodes[nodeA]?.logs.values.first?.replica?.generation == 1)
        let format = DiskLogFormat(regionCount: 8, blockSize: 512)
        guard let image = k.sim.devices["/dev/shared"], case let .success(decoded) = format.decode(image) else {
            Issue.record("no valid log on the device")
            return
        }
        #expect(decoded.generation == 1, "done wrote the new generation at once")
        #expect(decoded.clean[2] == false)
        // Every daemon goes; a new one founds the state from the device.
        k.sim.crash(nodeA, reason: .nodeDown)
        k.sim.settle()
        let fresh = MemberID(nodeID: 3, pid: 300)
        k.sim.start(fresh, boot: 5)
        #expect(k.ask(.constructor, ctr("\(8 * 1024) clustered-disk /dev/shared 1024"), on: fresh)?.error == 0)
        #expect(k.ask(.resume, on: fresh) == .ok)
        #expect(k.sim.nodes[fresh]?.logs.values.first?.replica?.generation == 1, "not back to generation 0")
    }

    @Test("a DLM that never answers: clustered constructors are refused after the bound, with the reason")
    func dlmThatHangs() {
        var k = SimKernel()
        k.sim.dlm.answers = false
        k.sim.start(nodeA)
        let s = k.send(.constructor, ctr("\(8 * 1024) clustered-core 1024 nosync"), on: nodeA)
        k.sim.settle()
        #expect(k.sim.reply(of: nodeA, seq: s) == nil, "held while the lock is asked for")
        k.sim.now += 31_000_000_000
        k.sim.flushOutbound(of: nodeA)
        #expect(k.sim.reply(of: nodeA, seq: s)?.error == -22)
        #expect(k.sim.notices[nodeA]?.contains { $0.message.contains("did not grant this node's lock within 30 s") } == true)
    }

    @Test("a daemon restarted on the same node takes over its predecessor's marks")
    func restartedDaemonAdoptsMarks() {
        var k = SimKernel()
        k.sim.quorum = QuorumView(quorate: true, nodes: [1, 2])
        k.bringUp([nodeA, nodeB], length: 8 * 1024)
        #expect(k.ask(.markRegion, regions([3]), on: nodeB) == .ok)
        k.sim.crash(nodeB, reason: .processDown)
        k.sim.settle()
        #expect(k.remoteRecovering(3, on: nodeA)?.0 == true)
        let restarted = MemberID(nodeID: 2, pid: 201)
        k.sim.start(restarted)
        #expect(k.ask(.constructor, ctr("\(8 * 1024) clustered-core 1024 nosync", nul: true), on: restarted) == .ok)
        #expect(k.ask(.resume, on: restarted) == .ok)
        #expect(k.remoteRecovering(3, on: nodeA)?.0 == false)
        #expect(k.flag(.isClean, 3, on: nodeA) == false, "the restarted daemon holds the mark now")
        #expect(k.ask(.clearRegion, regions([3]), on: restarted) == .ok)
        #expect(k.flag(.isClean, 3, on: nodeA) == true)
        #expect(k.digests().count == 1)
    }

    @Test("a restarted daemon keeps its predecessor's resync region across the reconnect RESUME")
    func restartedDaemonKeepsResyncRegion() {
        var k = SimKernel()
        k.sim.quorum = QuorumView(quorate: true, nodes: [1, 2])
        k.bringUp([nodeA, nodeB], table: "clustered-core 1024 sync", length: 8 * 1024)
        #expect(k.resyncWork(on: nodeB)! == 0)
        k.sim.crash(nodeB, reason: .processDown)
        k.sim.settle()
        let restarted = MemberID(nodeID: 2, pid: 201)
        k.sim.start(restarted)
        #expect(k.ask(.constructor, ctr("\(8 * 1024) clustered-core 1024 sync", nul: true), on: restarted) == .ok)
        #expect(k.ask(.resume, on: restarted) == .ok)
        // The reconnected kernel kept the hint it had cached: its recovery is restarted.
        #expect(k.sim.recoveryRestarts.map(\.member) == [restarted])
        // Node 2's kernel is still copying region 0: nobody else gets it, and writers are told.
        #expect(k.resyncWork(on: nodeA)! == 1)
        #expect(k.remoteRecovering(0, on: nodeA)?.0 == true)
        #expect(k.ask(.setRegionSync, .regionSync(region: 0, inSync: true), on: restarted) == .ok)
        #expect(k.remoteRecovering(0, on: nodeA)?.0 == false)
        #expect(k.digests().count == 1)
    }

    @Test("without quorum, state changes are held, not failed; they complete when quorum returns")
    func quorumHoldsRequests() {
        var k = SimKernel()
        k.bringUp([nodeA, nodeB])
        k.sim.setQuorum(QuorumView(quorate: false, nodes: [1]), on: [nodeA])
        let s = k.send(.markRegion, regions([1]), on: nodeA)
        k.sim.settle()
        #expect(k.sim.reply(of: nodeA, seq: s) == nil)
        // Reads of local state are still answered.
        #expect(k.ask(.getRegionSize, on: nodeA)?.payload == .count(1024))
        k.sim.setQuorum(QuorumView(quorate: true, nodes: [1, 2]), on: [nodeA])
        k.sim.settle()
        #expect(k.sim.reply(of: nodeA, seq: s) == .ok)
        #expect(k.flag(.isClean, 1, on: nodeB) == false)
    }

    @Test("a joiner under concurrent traffic ends with the same state")
    func joinUnderTraffic() {
        var k = SimKernel()
        k.bringUp([nodeA, nodeB], table: "clustered-core 1024 sync", length: 64 * 1024)
        k.sim.start(nodeC)
        k.send(.constructor, ctr("\(64 * 1024) clustered-core 1024 sync"), on: nodeC)
        for i in 0 ..< 20 {
            k.send(.markRegion, regions([UInt64(i)]), on: nodeA)
            k.send(.getResyncWork, on: nodeB)
            k.sim.flushOutbound()
            k.sim.step()
        }
        k.send(.resume, on: nodeC)
        k.sim.settle()
        #expect(k.digests().count == 1)
        #expect(k.sim.nodes[nodeC]!.logs.values.first!.status == .active)
    }

    @Test("a member speaking another protocol version is refused with a clear notice")
    func unknownVersionIsRefused() {
        var k = SimKernel()
        k.bringUp([nodeA, nodeB])
        var bytes = ClusterMessage.operations([LogBatch(log: Array(k.uuid.utf8), entries: [TokenedOperation(token: 0, operation: .mark([1]))])]).encoded()
        bytes[4] = 9
        k.sim.cpg.multicast(bytes, group: ClusterNode.orderingGroup, from: nodeB)
        k.sim.settle()
        #expect(k.flag(.isClean, 1, on: nodeA) == true)
        #expect(k.sim.notices[nodeA]!.contains { $0.message.contains("another cluster protocol") })
    }

    @Test("clustered-disk: one writer; a FLUSH on another member is answered after the writer wrote")
    func diskLogSingleWriter() {
        var k = SimKernel()
        k.bringUp([nodeA, nodeB], table: "clustered-disk /dev/shared 1024", length: 64 * 1024)
        #expect(k.ask(.flush, regions([70 % 64]), on: nodeB) == .ok)
        let image = k.sim.devices["/dev/shared"]!
        let format = DiskLogFormat(regionCount: 64, blockSize: 512)
        guard case let .success(decoded) = format.decode(image) else {
            Issue.record("no valid log on the device")
            return
        }
        #expect(decoded.clean[6] == false)
        #expect(k.sim.nodes[nodeA]!.logs.values.first!.replica!.diskWriter == nodeA)
        #expect(k.digests().count == 1, "\(k.sim.nodes.values.flatMap { $0.dumpLines() })")
    }

    /// Issue 8: a clustered-disk log created and resumed without any write left its device without a
    /// header. The kernel's own disk log writes the header and the clean bitmap at resume.
    @Test("clustered-disk: create + resume writes the header and the clean bitmap before RESUME is answered",
          arguments: [("nosync", true), ("sync", false), ("", false)])
    func diskHeaderAtResume(mode: String, clean: Bool) {
        var k = SimKernel()
        k.bringUp([nodeA], table: "clustered-disk /dev/shared 1024 \(mode)", length: 64 * 1024 - 512)
        let format = DiskLogFormat(regionCount: 64, blockSize: 512)
        guard let image = k.sim.devices["/dev/shared"], case let .success(decoded) = format.decode(image) else {
            Issue.record("no valid log on the device after create + resume (\(mode))")
            return
        }
        #expect(decoded.recordedRegions == 64)
        #expect(decoded.clean.popCount == (clean ? 64 : 0))
        // A second member's resume changes nothing on the device and is answered at once.
        k.sim.start(nodeB)
        #expect(k.ask(.constructor, ctr("\(64 * 1024 - 512) clustered-disk /dev/shared 1024 \(mode)"), on: nodeB)?.error == 0)
        #expect(k.ask(.resume, on: nodeB) == .ok)
        #expect(k.digests().count == 1)
    }

    /// Issue 8 (VM scenario j): after a failed log write, a suspend and resume with the device back
    /// left status `D`; the local disk log shows `A` again.
    @Test("clustered-disk: a resume after a failed log write rewrites the image and status shows A again")
    func diskFailureClearsAtResume() {
        var k = SimKernel()
        k.bringUp([nodeA, nodeB], table: "clustered-disk /dev/shared 1024 nosync", length: 64 * 1024)
        k.sim.failingDevices.insert("/dev/shared")
        #expect(k.ask(.flush, regions([5]), on: nodeB)?.error == EIO)
        #expect(k.ask(.statusInfo, on: nodeA)?.payload == .text("3 clustered-disk 7:0 D"))
        k.sim.failingDevices.remove("/dev/shared")
        for member in [nodeA, nodeB] {
            #expect(k.ask(.postsuspend, on: member) == .ok)
        }
        for member in [nodeA, nodeB] {
            #expect(k.ask(.resume, on: member) == .ok)
            #expect(k.ask(.statusInfo, on: member)?.payload == .text("3 clustered-disk 7:0 A"))
        }
        #expect(k.digests().count == 1)
    }

    @Test("clustered-disk: the writer keeps its role when a lower member joins, and hands it on when it leaves")
    func diskWriterStaysUntilItLeaves() {
        var k = SimKernel()
        k.bringUp([nodeB, nodeA], table: "clustered-disk /dev/shared 1024", length: 64 * 1024)
        #expect(k.sim.nodes[nodeA]!.logs.values.first!.replica!.diskWriter == nodeB)
        #expect(k.ask(.flush, regions([3]), on: nodeA) == .ok)
        k.sim.crash(nodeB, reason: .processDown)
        k.sim.settle()
        #expect(k.sim.nodes[nodeA]!.logs.values.first!.replica!.diskWriter == nodeA)
    }

    @Test("cluster messages round-trip and reject garbage with typed errors")
    func messageCodec() throws {
        var bitmap = Bitmap(count: 1000)
        bitmap.setRange(10 ..< 500)
        let ops: [ClusterOperation] = [.mark([1, 2, 1 << 40]), .clear([]), .flush(marks: [3]), .isClean(4), .getResyncWork,
                                       .setRegionSync(5, inSync: true), .isRemoteRecovering(6), .resume, .postsuspend,
                                       .flushed(number: 9, failed: true), .recoveryDone(generation: 2), .diskLoaded(clean: bitmap, generation: 3), .diskLoaded(clean: nil, generation: 0)]
        let message = ClusterMessage.operations([LogBatch(log: Array("LVM-a".utf8), entries: ops.enumerated().map { TokenedOperation(token: UInt64($0.offset), operation: $0.element) }),
                                                 LogBatch(log: Array("LVM-b".utf8), entries: [TokenedOperation(token: 0, operation: .attach(boot: 7)), TokenedOperation(token: 0, operation: .detach)])])
        let bytes = message.encoded()
        #expect(try ClusterMessage.decode(bytes[...]) == message)
        let census = ClusterMessage.census(logs: [Array("LVM-a".utf8), Array("LVM-b".utf8)], members: [nodeA, nodeB], boot: 0x1234_5678_9abc_def0)
        #expect(try ClusterMessage.decode(census.encoded()[...]) == census)
        let chunk = ClusterMessage.snapshotChunk(SnapshotChunk(log: Array("LVM-a".utf8), donor: nodeA, serial: 3, recipients: [.init(member: nodeB, point: 2)], index: 0, count: 1, data: [1, 2, 3]))
        #expect(try ClusterMessage.decode(chunk.encoded()[...]) == chunk)
        #expect(throws: ClusterMessageError.badMagic(0)) { try ClusterMessage.decode(zeros(8)[...]) }
        #expect(throws: ClusterMessageError.trailingBytes(1)) { try ClusterMessage.decode((bytes + [0])[...]) }
        for cut in 0 ..< bytes.count {
            #expect(throws: ClusterMessageError.self) { try ClusterMessage.decode(bytes[0 ..< cut]) }
        }
    }
}
