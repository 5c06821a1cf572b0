"""Early warnings (sender/warnings.py): each said once, as soon as its cause is likely."""

from stamp_suite.sender.events import Lost, Refused, Rejected, RejectReason
from stamp_suite.sender.warnings import EarlyWarnings


def warnings_for(*events):
    said = []
    w = EarlyWarnings("[::1]:862", 1.0, said.append)
    for ev in events:
        w(ev)
    return said


def test_the_third_refusal_in_a_row_is_said_once():
    said = warnings_for(*(Refused(n) for n in (1, 2, 3, 4, 5)))
    assert len(said) == 1 and "no reflector on [::1]:862: ICMP port unreachable (3 in a row)" in said[0]
    assert warnings_for(Refused(1), Refused(2)) == []
    said = warnings_for(*(Refused(n, "host unreachable") for n in (1, 2, 3)))
    assert said == ["warning: cannot reach [::1]:862: ICMP host unreachable (3 in a row); still trying"]


def test_icmp_errors_are_told_from_errors_of_the_socket():
    import errno

    from stamp_suite.net.icmp import icmp_error
    assert icmp_error(ConnectionRefusedError(errno.ECONNREFUSED, "x")) == "port unreachable"
    assert icmp_error(OSError(errno.EHOSTUNREACH, "x")) == "host unreachable"  # also what a REJECT rule sends
    assert icmp_error(OSError(errno.ENETUNREACH, "x")) == "network unreachable"
    assert icmp_error(OSError(errno.EBADF, "x")) is None


def test_silence_hmac_and_foreign_datagrams_each_once():
    said = warnings_for(Lost(0, 0), Lost(1, 0),
                        Rejected(RejectReason.HMAC_FAILURE, "x"), Rejected(RejectReason.HMAC_FAILURE, "y"),
                        Rejected(RejectReason.FOREIGN, "not ours"))
    assert len(said) == 3
    assert "no reply yet" in said[0] and "open or authenticated" in said[0]
    assert "fail HMAC verification" in said[1] and "not replies to our packets (not ours)" in said[2]


def test_a_reflector_that_echoes_no_ssid_is_said_once():
    # RFC 8972 §3: a reflector of RFC 8762 only answers 0 where the SSID goes.
    from stamp_suite.sender.events import Reply, Sample

    def reply(ssid):
        return Reply(Sample(1, 1, 0, 0, 0, 0, 64, 64, 0, False, False, 0.0, 0.0, ssid))
    said = []
    w = EarlyWarnings("[::1]:862", 1.0, said.append, ssid=5)
    for ev in (reply(5), reply(0), reply(0)):
        w(ev)
    assert said == ["warning: [::1]:862 answers with SSID 0, not --ssid 5: a reflector of RFC 8762 only "
                    "(RFC 8972 §3), which tells sessions apart by address and port alone"]
    assert warnings_for(reply(0)) == []  # a session without --ssid sends 0 itself


def test_no_silence_warning_once_refusals_explain_it():
    said = warnings_for(Refused(1), Lost(0, 0))
    assert said == []


def test_the_reflector_says_why_it_drops_authenticated_packets_at_most_once_a_minute_of_each_kind():
    from stamp_suite.reflector.auth_log import INTERVAL_NS, AuthDropLog
    from stamp_suite.reflector.counters import DropReason
    lines: list[str] = []
    log = AuthDropLog(authenticated=True, write=lines.append)
    src = ("192.0.2.1", 4000)
    log(DropReason.HMAC_FAILURE, src, 0)
    log(DropReason.RATE_LIMITED, src, 1)  # not an authentication matter: never said here
    for t in range(2, 12):
        log(DropReason.HMAC_FAILURE, src, t)
    log(DropReason.WRONG_MODE, src, 20)  # another kind: said at once
    log(DropReason.HMAC_FAILURE, src, INTERVAL_NS)
    assert lines == ["stamp-suite: no reply to 192.0.2.1:4000: HMAC does not verify: the sender's key differs "
                     "from ours",
                     "stamp-suite: no reply to 192.0.2.1:4000: an open-mode packet, and this reflector runs "
                     "authenticated mode (-A A)",
                     "stamp-suite: no reply to 192.0.2.1:4000: HMAC does not verify: the sender's key differs "
                     "from ours (11 such drops since the last line)"]


def test_replies_this_host_dropped_unread_are_said_once_as_not_the_paths_loss():
    from stamp_suite.sender.events import DroppedUnread
    assert warnings_for(DroppedUnread(0, 0)) == []  # the first count, nothing dropped
    said = warnings_for(DroppedUnread(0, 0), DroppedUnread(12, 12), DroppedUnread(30, 42))
    assert len(said) == 1 and "this host is dropping replies from [::1]:862 before reading them (12 so far" in said[0]
    assert "the path did not lose them; send slower (a longer -d)" in said[0]
    said = []
    capacity = EarlyWarnings("x", 1.0, said.append, window=64, receive_buffer=(416 << 10, True))
    capacity(DroppedUnread(3, 3))
    assert said[0].endswith("keep fewer in flight (--window below 64), or let its socket have a larger receive "
                            "buffer (416 KiB now: net.core.rmem_max caps it)")


def test_a_send_that_broke_the_pace_is_said_once():
    """Later than two intervals and 100 ms (a stall of the machine is not a broken pace)."""
    from stamp_suite.sender.events import Sent
    said = []
    w = EarlyWarnings("x", 1.0, said.append, interval_ns=100_000_000)
    for late in (0, 150_000_000, 250_000_000, 900_000_000, None):
        w(Sent(0, 0, b"", late_ns=late))
    assert len(said) == 1 and "sends to x are falling behind their schedule (one left 250 ms late)" in said[0]
