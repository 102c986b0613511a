import Testing
@testable import MirrorLogCore

@Suite struct BitmapTests {
    @Test func initAllSetClearsTail() {
        let b = Bitmap(count: 70, value: true)
        #expect(b.words == [~0, 0x3F])
        #expect(b.popCount == 70)
        #expect(Bitmap(count: 128, value: true).popCount == 128)
        #expect(Bitmap(count: 0, value: true).words.isEmpty)
    }

    @Test func updateReportsChange() {
        var b = Bitmap(count: 10)
        var changes: [Bool] = []
        changes.append(b.update(3, to: true))
        changes.append(b.update(3, to: true))
        #expect(b[3])
        changes.append(b.update(3, to: false))
        changes.append(b.update(3, to: false))
        #expect(!b[3])
        #expect(changes == [true, false, true, false])
    }

    @Test func firstIndex() {
        var b = Bitmap(count: 200)
        #expect(b.firstIndex(of: true, from: 0) == 200)
        #expect(b.firstIndex(of: false, from: 0) == 0)
        #expect(b.firstIndex(of: false, from: 199) == 199)
        #expect(b.firstIndex(of: false, from: 200) == 200)
        #expect(b.firstIndex(of: false, from: 1000) == 200)
        b[130] = true
        b[199] = true
        #expect(b.firstIndex(of: true, from: 0) == 130)
        #expect(b.firstIndex(of: true, from: 130) == 130)
        #expect(b.firstIndex(of: true, from: 131) == 199)
        b.fill(true)
        #expect(b.firstIndex(of: false, from: 0) == 200, "tail bits beyond count are not reported")
        b[64] = false
        #expect(b.firstIndex(of: false, from: 0) == 64)
        #expect(b.firstIndex(of: false, from: 65) == 200)
    }

    @Test func setWordDropsBitsBeyondCount() {
        var b = Bitmap(count: 66)
        b.setWord(1, ~0)
        #expect(b.words[1] == 0b11)
        #expect(b.popCount == 2)
    }
}

@Suite struct MarkTableTests {
    @Test func perMemberMarks() {
        var t = MarkTable(regionCount: 100)
        var results: [Bool] = []
        results.append(t.mark(5, by: memberA))
        results.append(t.mark(5, by: memberA))      // already held by A
        results.append(t.mark(5, by: memberB))
        #expect(t.isHeld(5))
        results.append(t.clear(5, by: memberA))
        #expect(t.isHeld(5), "B still holds it")
        results.append(t.clear(5, by: memberC))     // C never held it
        results.append(t.clear(5, by: memberB))
        #expect(!t.isHeld(5))
        #expect(results == [true, false, true, true, false, true])
        _ = t.mark(7, by: memberC)
        _ = t.mark(9, by: memberC)
        #expect(t.markCount(of: memberC) == 2)
        let dropped = t.removeAll(of: memberC)
        #expect(dropped?.popCount == 2)
        #expect(!t.isHeld(7))
        #expect(t.regions(of: memberC) == nil)
    }
}
