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


def test_no_silence_warning_once_refusals_explain_it():
    said = warnings_for(Refused(1), Lost(0, 0))
    assert said == []
