"""The history checker on hand-made histories: clean ones pass, each anomaly is counted."""

from __future__ import annotations

from tests.reliability.history import History, Outcome, Receipt, Stored
from tests.reliability.timeline import Entry


def _run(sends: int = 3, readers: tuple[str, ...] = ("r1", "r2")) -> History:
    """A clean run: ``sends`` acknowledged messages in chat c, each reader got all."""
    h = History()
    for reader in readers:
        h.follow(reader, "c", 0)
    for i in range(1, sends + 1):
        h.invoke("w", "c", f"w-{i}")
        h.ok(f"w-{i}", seq=i, id=100 + i)
    for reader in readers:
        for i in range(1, sends + 1):
            h.receive(reader, "c", i, 100 + i, f"w-{i}")
    return h


def _stored(n: int) -> list[Stored]:
    return [Stored(i, 100 + i, f"w-{i}") for i in range(1, n + 1)]


def test_a_clean_history_has_no_anomaly() -> None:
    h = _run()
    h.store("c", _stored(3))
    report = h.check()
    assert report.clean, report.details
    assert (report.sends, report.ok, report.receipts) == (3, 3, 6)


def test_failed_sends_may_be_absent_and_indeterminate_ones_present_once() -> None:
    h = _run()
    h.invoke("w", "c", "failed")
    h.fail("failed", "invalid")
    h.invoke("w", "c", "absent")
    h.fail("absent", "unavailable")  # maybe stored: it was not
    h.invoke("w", "c", "present")
    h.unknown("present")  # no answer: it was stored, as seq 4
    h.invoke("w", "c", "pending")  # never answered at all
    for reader in ("r1", "r2"):
        h.receive(reader, "c", 4, 104, "present")
    h.store("c", [*_stored(3), Stored(4, 104, "present")])
    report = h.check()
    assert report.clean, report.details
    assert (report.ok, report.failed, report.indeterminate) == (3, 1, 3)


def test_a_retry_acknowledged_after_an_unavailable_is_ok() -> None:
    h = _run()
    h.invoke("w", "c", "retried")
    h.fail("retried", "unavailable")
    h.attempt("retried")
    h.ok("retried", 4, 104)
    h.fail("retried", "unavailable")  # a late error of the first try changes nothing
    assert h.sends["retried"].outcome is Outcome.OK
    for reader in ("r1", "r2"):
        h.receive(reader, "c", 4, 104, "retried")
    assert h.check().clean


def test_lost_acknowledged_message_a_follower_never_got() -> None:
    h = _run()
    h.receipts = [r for r in h.receipts if not (r.client == "r2" and r.seq == 3)]
    report = h.check()
    assert report.lost == 1
    assert report.gaps == 1  # r2 also stopped short of the chat's end
    assert report.anomalies["duplicated"] == report.unexpected == report.reordered == 0


def test_lost_acknowledged_message_missing_from_the_store() -> None:
    h = _run()
    h.store("c", _stored(2))
    report = h.check()
    assert report.lost == 1
    assert report.unexpected == 1  # and the receipts of #3 disagree with the store


def test_a_follower_counted_only_from_where_it_started() -> None:
    h = _run()
    h.follow("late", "c", 2)
    h.receive("late", "c", 3, 103, "w-3")
    assert h.check().clean


def test_duplicated_on_one_connection_and_in_the_store() -> None:
    h = _run()
    h.receive("r1", "c", 2, 102, "w-2")
    assert h.check().duplicated == 1
    h = _run()
    h.invoke("w", "c", "twice")
    h.unknown("twice")
    h.store("c", [*_stored(3), Stored(4, 104, "twice"), Stored(5, 105, "twice")])
    for reader in ("r1", "r2"):
        h.receive(reader, "c", 4, 104, "twice")
        h.receive(reader, "c", 5, 105, "twice")
    report = h.check()
    assert report.duplicated == 1 and report.lost == report.gaps == 0


def test_unexpected_never_sent_failed_or_contradicting_its_ack() -> None:
    h = _run()
    h.receive("r1", "c", 4, 104, "nobody-sent-this")
    report = h.check()
    assert report.unexpected == 1
    h = _run()
    h.invoke("w", "c", "refused")
    h.fail("refused", "forbidden")
    h.receive("r1", "c", 4, 104, "refused")
    h.receive("r2", "c", 4, 104, "refused")
    assert h.check().unexpected == 1  # one message, however many got it
    h = _run()
    h.receipts = [r if r.seq != 2 or r.client != "r1" else
                  Receipt(r.client, r.chat, Entry(2, 999, r.client_id)) for r in h.receipts]
    assert h.check().unexpected == 1
    h = _run()
    h.store("c", [*_stored(3), Stored(4, 104, None)])
    assert h.check().unexpected == 1


def test_gaps_inside_a_stream_and_at_its_end() -> None:
    h = History()
    h.follow("r", "c", 0)
    for i in (1, 2, 3, 4):
        h.invoke("w", "c", f"w-{i}")
        h.unknown(f"w-{i}")
    for i in (1, 3):
        h.receive("r", "c", i, 100 + i, f"w-{i}")
    h.store("c", _stored(4))
    report = h.check()
    assert report.gaps == 2  # 1 -> 3, and it stopped at 3 of 4
    assert report.lost == 0  # nothing was acknowledged


def test_reordered() -> None:
    h = _run()
    h.receipts = [r for r in h.receipts if r.client != "r1"]
    for seq in (1, 3, 2):
        h.receive("r1", "c", seq, 100 + seq, f"w-{seq}")
    report = h.check()
    assert report.reordered == 1
    assert report.gaps == 1  # 1 -> 3 jumped before #2 came
    assert report.lost == report.duplicated == report.unexpected == 0


def test_two_sends_acknowledged_with_one_seq_are_unexpected() -> None:
    h = _run()
    h.invoke("x", "c", "x-1")
    h.ok("x-1", 3, 555)
    assert h.check().unexpected >= 1


def test_client_ids_are_unique_in_a_history() -> None:
    h = History()
    h.invoke("w", "c", "same")
    try:
        h.invoke("w", "c", "same")
    except ValueError:
        return
    raise AssertionError("a client_id used twice must be refused")
