from __future__ import annotations

from msmtp_twisted.config.netrc import NetrcEntry, find_password, parse_netrc, search_netrc

SAMPLE = """\
# comment line
machine mail.example.com login joe password "s3 cret"
machine other.example
  user  ann
  passwd 'it''s'   # trailing comment
default login anyone password fallback
macdef init
machine evil.example login joe password fromMacro

machine mail.example.com login bob password bobpw
machine nologin.example password x
"""


def test_parse_entries_in_file_order() -> None:
    assert parse_netrc(SAMPLE) == [
        NetrcEntry("mail.example.com", "joe", "s3 cret"),
        NetrcEntry("other.example", "ann", "its"),
        NetrcEntry(None, "anyone", "fallback"),
        NetrcEntry("mail.example.com", "bob", "bobpw"),
    ]


def test_search_needs_host_and_login() -> None:
    entries = parse_netrc(SAMPLE)
    assert search_netrc(entries, "mail.example.com", "bob").password == "bobpw"
    assert search_netrc(entries, "mail.example.com", "nobody") is None
    # "default" entries never match, as in msmtp
    assert search_netrc(entries, "unknown.example", "anyone") is None
    # a macdef body is not parsed
    assert search_netrc(entries, "evil.example", "joe") is None


def test_find_password_user_file_then_system_file(tmp_path) -> None:
    home = tmp_path / "home"
    etc = tmp_path / "etc"
    home.mkdir()
    etc.mkdir()
    (etc / "netrc").write_text("machine h login u password system\nmachine g login u password g\n")
    assert find_password("h", "u", str(etc), str(home)) == "system"
    (home / ".netrc").write_text("machine h login u password user\n")
    assert find_password("h", "u", str(etc), str(home)) == "user"
    assert find_password("g", "u", str(etc), str(home)) == "g"
    assert find_password("x", "u", str(etc), str(home)) is None


def test_garbage_never_raises() -> None:
    for text in ["machine", "login", "password 'unterminated", "\x00\xff", "macdef\n\nx"]:
        parse_netrc(text)
