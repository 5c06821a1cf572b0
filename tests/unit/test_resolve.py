"""Host names and host:port forms (net/resolve.py), without a resolver where none is needed."""

import socket

import pytest

from stamp_suite.net.resolve import NameNotResolved, ResolveError, addresses, resolve, split_host_port


@pytest.mark.parametrize("text, expected", [
    ("reflector.example.net", ("reflector.example.net", None)),
    ("192.0.2.1", ("192.0.2.1", None)),
    ("192.0.2.1:8620", ("192.0.2.1", 8620)),
    ("2001:db8::1", ("2001:db8::1", None)),  # a bare IPv6 address: no port
    ("[2001:db8::1]", ("2001:db8::1", None)),
    ("[2001:db8::1]:8622", ("2001:db8::1", 8622)),
    ("[::1:8620]", ("::1:8620", None)),  # bracketed: the address, whatever its last group
    ("2001:db8::1:a", ("2001:db8::1:a", None)),  # a last group that is no port
])
def test_host_and_port_forms(text, expected):
    assert split_host_port(text) == expected


@pytest.mark.parametrize("text", ["[2001:db8::1", "[2001:db8::1]8622", "192.0.2.1:0", "192.0.2.1:65536",
                                  "192.0.2.1:x"])
def test_bad_forms_are_one_line(text):
    with pytest.raises(ResolveError):
        split_host_port(text)


def test_a_bare_ipv6_address_ending_in_what_could_be_a_port_is_ambiguous():
    with pytest.raises(ResolveError, match=r"'::1:8620' is ambiguous: write \[::1\]:8620 for port 8620 of ::1, "
                                           r"or \[::1:8620\] for that address"):
        split_host_port("::1:8620")


def test_literals_need_no_resolver_and_the_family_is_checked():
    assert resolve("192.0.2.1", 862) == ("192.0.2.1", 862)
    assert addresses("2001:db8::1", 862) == ["2001:db8::1"]
    with pytest.raises(ResolveError, match="IPv6 is asked for"):
        resolve("192.0.2.1", 862, socket.AF_INET6)
    with pytest.raises(ResolveError, match=r"write \[ADDRESS\]:PORT"):
        resolve("::1:18700", 862)  # a port glued to an IPv6 address
    with pytest.raises(ResolveError, match="cannot resolve 'no-such-host.invalid'"):
        resolve("no-such-host.invalid", 862)  # .invalid never resolves (RFC 2606)


def test_a_name_without_an_address_is_told_from_an_address_that_can_never_work():
    """The monitor waits for the one (NameNotResolved) and refuses the other at its start."""
    with pytest.raises(NameNotResolved):
        resolve("no-such-host.invalid", 862)
    with pytest.raises(ResolveError) as refused:
        resolve("::1", 862, socket.AF_INET)
    assert not isinstance(refused.value, NameNotResolved)
