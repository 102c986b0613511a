extension ClusterLog {
    /// As the donor: the state at this point of the order, in chunks, to every member waiting for it.
    mutating func sendSnapshot() -> [Directive] {
        guard let replica else { return [] }
        let recipients = replica.unsyncedAge.sorted { $0.key < $1.key }.map { SnapshotChunk.Recipient(member: $0.key, point: $0.value) }
        guard !recipients.isEmpty else { return [] }
        snapshotSerial += 1
        let bytes = ReplicaSnapshot.encode(replica)
        let chunks = SnapshotChunk.split(bytes, log: uuidBytes, donor: me, serial: snapshotSerial, recipients: recipients)
        var out: [Directive] = chunks.map { .multicast(ClusterMessage.snapshotChunk($0).encoded()) }
        let names = recipients.map { "\($0.member)" }.joined(separator: ", ")
        out.append(notice(.info, "sending the state to \(names): \(bytes.count) bytes in \(chunks.count) chunk(s)"))
        return out
    }

    /// As a joiner: a chunk addressed to us.
    mutating func receiveChunk(_ chunk: SnapshotChunk, quorum: QuorumView) -> [Directive] {
        guard let point = chunk.recipients.first(where: { $0.member == me })?.point,
              case var .awaitingState(wait) = phase else { return [] }
        if chunk.index == 0 {
            wait.assembly = Assembly(donor: chunk.donor, serial: chunk.serial, point: point, recipients: chunk.recipients.map(\.member), data: chunk.data, next: 1)
        } else if var current = wait.assembly, current.donor == chunk.donor, current.serial == chunk.serial, current.next == chunk.index {
            current.data += chunk.data
            current.next += 1
            wait.assembly = current
        } else {
            return []
        }
        guard let complete = wait.assembly, complete.next == chunk.count else {
            phase = .awaitingState(wait)
            return []
        }
        wait.assembly = nil
        phase = .awaitingState(wait)
        guard complete.point <= epoch else {
            return [notice(.warning, "discarded a state transfer from \(complete.donor) taken at a configuration this member has not seen")]
        }
        var state: ReplicatedLog
        do {
            state = try ReplicaSnapshot.decode(complete.data[...], onto: templateLog(stateLost: false))
        } catch {
            return [notice(.error, "discarded a state transfer from \(complete.donor): \(error); waiting for another")]
        }
        state.mutation = mutation
        var out = [notice(.info, "state received from \(complete.donor): \(complete.data.count) bytes, \(state.log.syncCount)/\(state.regionCount) regions in sync, recovery generation \(state.generation)")]
        phase = .active(state)
        // Replay what the snapshot does not contain: everything after its configuration change.
        let events = wait.buffer
        var replayed = 0
        var resend: [TokenedOperation] = []
        for (tag, event) in events {
            switch event {
            case let .change(change) where tag > complete.point:
                out += applyChange(change, quorum: quorum)
                replayed += 1
            case let .message(sender, message) where tag >= complete.point && mutation != .transferSkipsBufferedEvents:
                out += apply(message, from: sender, quorum: quorum)
                replayed += 1
            case let .message(sender, .operations(list)) where sender == me:
                // Our own operations that the state already contains: only we can answer them, and
                // we never applied them. Each operation is idempotent for its sender: send it again
                // (found by the simulation: a RESUME was never answered).
                resend += list.filter { $0.token != 0 && pending[$0.token] != nil }
            default:
                break
            }
            // A replayed change can send us back to waiting (a merge after divergence): stop there.
            guard status == .active else { return out }
        }
        withReplica { $0.markSynced(complete.recipients) }
        outbound.insert(contentsOf: resend, at: 0)
        if replayed > 0 { out.append(notice(.debug, "replayed \(replayed) event(s) delivered during the transfer")) }
        out += afterStateInstalled()
        return out
    }
}
