import MirrorLogCore

/// Fault injection (``SimulationFault``) and the healing that follows the fault phase.
extension ClusterSimulation {
    // MARK: Faults

    mutating func injectFault() {
        var choices: [SimulationFault] = []
        let up = nodes.indices.filter { nodes[$0].up }
        let withDaemon = up.filter { nodes[$0].daemon != nil }
        let running = up.filter { nodes[$0].kernel?.phase == .running && nodes[$0].daemon != nil }
        if !withDaemon.isEmpty { choices.append(.crashDaemon) }
        if up.contains(where: { nodes[$0].daemon == nil }) { choices.append(.restartDaemon) }
        if up.count > 1 { choices.append(.crashNode) }
        if nodes.contains(where: { !$0.up }) { choices.append(.powerOn) }
        if fenceable.contains(where: { !nodes[$0].fenceFails }) { choices.append(.fence) }
        if !running.isEmpty { choices += [.cleanLeave, .suspend, .legFailure, .burst] }
        if up.contains(where: { nodes[$0].kernel == nil || nodes[$0].kernel?.phase == .destroyed }) { choices.append(.recreate) }
        if up.contains(where: { nodes[$0].kernel?.phase == .suspended }) { choices.append(.resume) }
        if cluster.cpg.components.count == 1, up.count >= 2, !cluster.cpg.topologyChangePending { choices.append(.partition) }
        if cluster.cpg.components.count == 2, !cluster.cpg.topologyChangePending { choices.append(.merge) }
        if configuration.logType.hasLogDevice { choices.append(.device) }
        if !withDaemon.isEmpty { choices.append(.flowControl) }
        guard var kind = choices.first else { return }
        var roll = rng.below(choices.reduce(0) { $0 + $1.weight })
        for fault in choices {
            if roll < fault.weight {
                kind = fault
                break
            }
            roll -= fault.weight
        }
        statistics.faults[kind.rawValue, default: 0] += 1
        switch kind {
        case .crashDaemon:
            crashDaemon(rng.pick(withDaemon), reason: .processDown)
        case .restartDaemon:
            startDaemon(rng.pick(up.filter { nodes[$0].daemon == nil }))
        case .crashNode:
            let index = rng.pick(up)
            nodes[index].fenceFails = rng.chance(300)
            crashNode(index)
        case .powerOn:
            let down = nodes.indices.filter { !nodes[$0].up }
            let index = rng.pick(down)
            // A node that rebooted before it was fenced is rarer.
            if fenceableAll.contains(index), !rng.chance(300) { return }
            powerOn(index)
        case .fence:
            fence(rng.pick(fenceable.filter { !nodes[$0].fenceFails }))
        case .cleanLeave:
            let index = rng.pick(running)
            note("node \(index + 1): clean shutdown of the mirror (suspend, DTR)")
            nodes[index].kernel!.requestSuspend(destroy: true)
        case .suspend:
            let index = rng.pick(running)
            note("node \(index + 1): suspend")
            nodes[index].kernel!.requestSuspend(destroy: false)
        case .legFailure:
            let index = rng.pick(running)
            if rng.chance(500) { nodes[index].kernel!.failNextWrite = true } else { nodes[index].kernel!.failNextResync = true }
            note("node \(index + 1): a leg fails")
        case .burst:
            let until = now + UInt64(rng.int(50 ... 400))
            burstUntil = until
            note("heavy traffic until \(until)")
        case .recreate:
            let index = rng.pick(up.filter { nodes[$0].kernel == nil || nodes[$0].kernel?.phase == .destroyed })
            note("node \(index + 1): mirror activated again")
            createDevice(index)
        case .resume:
            let index = rng.pick(up.filter { nodes[$0].kernel?.phase == .suspended })
            note("node \(index + 1): resume")
            nodes[index].kernel!.requestResume()
        case .partition:
            let index = 0
            let members = cluster.cpg.components[index].nodes.sorted()
            var side = Set<UInt32>()
            let size = rng.int(1 ... members.count - 1)
            var pool = members
            for _ in 0 ..< size { side.insert(pool.remove(at: rng.below(pool.count))) }
            let position = rng.int(0 ... cluster.cpg.components[index].pending)
            let pending = cluster.cpg.components[index].pending
            note("partition: \(side.sorted()) split off at position \(position) of \(pending)")
            for node in side.sorted() { nodes[Int(node) - 1].fenceFails = rng.chance(400) }
            cluster.cpg.partition(component: index, splitting: side, at: position)
        case .merge:
            let a = rng.int(0 ... cluster.cpg.components[0].pending)
            let b = rng.int(0 ... cluster.cpg.components[1].pending)
            note("merge queued")
            cluster.cpg.merge(0, 1, at: a, b)
        case .device:
            if cluster.failingDevices.isEmpty {
                cluster.failingDevices = ["/dev/sim-log"]
                note("log device fails")
            } else {
                cluster.failingDevices = []
                note("log device works again")
            }
        case .flowControl:
            let member = nodes[rng.pick(withDaemon)].daemon!
            if cluster.flowControlled.contains(member) {
                cluster.flowControlled.remove(member)
                note("flow control off for \(member)")
            } else {
                cluster.flowControlled.insert(member)
                note("flow control (TRY_AGAIN) on for \(member)")
            }
        }
    }

    /// Every node some component still lists without having it (fenced or not yet).
    var fenceableAll: Set<Int> {
        var out: Set<Int> = []
        for component in cluster.cpg.components {
            for id in (listed[component.id] ?? []).subtracting(component.nodes) { out.insert(Int(id) - 1) }
        }
        return out
    }

    // MARK: Healing

    mutating func startHealing() {
        healing = true
        note("— faults stop —")
        cluster.flowControlled = []
        cluster.failingDevices = []
        for i in nodes.indices {
            nodes[i].fenceFails = false
            nodes[i].kernel?.failNextWrite = false
            nodes[i].kernel?.failNextResync = false
        }
    }

    /// One step towards a healthy cluster: merge, fence, power on, restart, recreate, resume.
    mutating func healOne() {
        if healStep > 300 {
            for i in nodes.indices { nodes[i].kernel?.quiet = true }
        }
        if cluster.cpg.components.count > 1 {
            if !cluster.cpg.topologyChangePending {
                note("heal: merge")
                cluster.cpg.merge(0, 1, at: rng.int(0 ... cluster.cpg.components[0].pending), rng.int(0 ... cluster.cpg.components[1].pending))
            }
            return
        }
        if let index = fenceable.first {
            fence(index)
            return
        }
        if let index = nodes.indices.first(where: { !nodes[$0].up }) {
            powerOn(index)
            return
        }
        if let index = nodes.indices.first(where: { nodes[$0].daemon == nil }) {
            startDaemon(index)
            return
        }
        if let index = nodes.indices.first(where: { nodes[$0].kernel == nil || nodes[$0].kernel?.phase == .destroyed }) {
            note("heal: node \(index + 1) activates its mirror again")
            createDevice(index)
            return
        }
        if let index = nodes.indices.first(where: { nodes[$0].kernel?.phase == .running && nodes[$0].kernel?.logFailure == true }) {
            // dmeventd's answer to a failed log: suspend and resume the mirror.
            note("heal: node \(index + 1) suspends and resumes its mirror after a log failure")
            nodes[index].kernel!.requestSuspend(destroy: false)
            return
        }
        if let index = nodes.indices.first(where: { nodes[$0].kernel?.phase == .suspended }) {
            note("heal: node \(index + 1) resumes")
            nodes[index].kernel!.requestResume()
            return
        }
    }
}
