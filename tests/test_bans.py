"""BanTable: growing delays, bans, repeat offenders and the bound, on a Clock."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock

from twisted_ftpd.auth.bans import MAX_BAN, BanTable, Verdict

A = "192.0.2.7"
B = "198.51.100.4"


def table(ban_after: int = 5, window: float = 600.0, ban_time: float = 600.0,
          **kwargs: Any) -> tuple[BanTable, Clock, list[dict[str, Any]]]:
    clock = Clock()
    events: list[dict[str, Any]] = []
    bans = BanTable(clock, ban_after, window, ban_time,
                    emit=lambda event, **fields: events.append({"event": event, **fields}),
                    **kwargs)
    return bans, clock, events


def fail(bans: BanTable, host: str, times: int) -> list[Verdict]:
    return [bans.failure(host) for _ in range(times)]


def test_the_first_failures_cost_the_plain_delay_then_it_doubles_up_to_sixteen() -> None:
    bans, _, _ = table(ban_after=0)
    assert [v.delay_factor for v in fail(bans, A, 9)] == [1, 1, 1, 2, 4, 8, 16, 16, 16]
    assert not any(v.banned for v in fail(bans, A, 20))  # ban_after=0 never bans


def test_failures_older_than_the_window_no_longer_count() -> None:
    bans, clock, _ = table(ban_after=0, window=60)
    fail(bans, A, 4)
    clock.advance(60)
    assert bans.failure(A).delay_factor == 1


def test_ban_after_n_failures_within_the_window_for_ban_time() -> None:
    bans, clock, events = table(ban_after=5, ban_time=300)
    assert [v.banned for v in fail(bans, A, 5)] == [False] * 4 + [True]
    assert events == [{"event": "ban", "peer": A, "seconds": 300}]
    assert bans.banned(A)
    clock.advance(299)
    assert bans.banned(A)
    clock.advance(1)
    assert not bans.banned(A)


def test_failures_spread_wider_than_the_window_never_ban() -> None:
    bans, clock, events = table(ban_after=3, window=100)
    for _ in range(10):
        fail(bans, A, 2)
        clock.advance(100)
    assert events == []
    assert not bans.banned(A)


def test_another_address_is_not_affected() -> None:
    bans, _, _ = table(ban_after=3)
    fail(bans, A, 3)
    assert bans.banned(A)
    assert not bans.banned(B)
    assert bans.failure(B) == Verdict(1.0)


def test_an_ipv4_client_is_one_address_however_the_socket_spells_it() -> None:
    bans, _, _ = table(ban_after=2)
    bans.failure(A)
    bans.failure(f"::ffff:{A}")
    assert bans.banned(A)
    assert bans.banned(f"::FFFF:{A}")


def test_a_failure_during_a_ban_says_banned_and_does_not_extend_it() -> None:
    bans, clock, events = table(ban_after=2, ban_time=100)
    fail(bans, A, 2)
    clock.advance(50)
    assert bans.failure(A) == Verdict(1.0, banned=True)  # a login already under way
    assert len(events) == 1
    clock.advance(50)
    assert not bans.banned(A)


def test_repeat_offenders_get_doubled_bans() -> None:
    bans, clock, events = table(ban_after=2, ban_time=100)
    for _ in range(3):
        fail(bans, A, 2)
        clock.advance(events[-1]["seconds"])
        assert not bans.banned(A)
    assert [e["seconds"] for e in events] == [100, 200, 400]


def test_repeat_bans_stop_doubling_at_a_day() -> None:
    bans, clock, events = table(ban_after=1, ban_time=3600)
    for _ in range(8):
        bans.failure(A)
        clock.advance(events[-1]["seconds"])
    assert max(e["seconds"] for e in events) == MAX_BAN
    assert events[-1]["seconds"] == MAX_BAN


def test_an_address_clean_for_as_long_as_its_last_ban_is_forgiven() -> None:
    bans, clock, events = table(ban_after=2, window=10, ban_time=100)
    fail(bans, A, 2)
    clock.advance(100 + 100)  # the ban, then as long again without a failure
    fail(bans, A, 2)
    assert [e["seconds"] for e in events] == [100, 100]
    assert len(bans) == 1


def test_a_clean_address_is_forgotten_after_the_window() -> None:
    bans, clock, _ = table(ban_after=5, window=10)
    bans.failure(A)
    clock.advance(10)
    bans.failure(B)  # room is made from the cold end first
    assert len(bans) == 1


def test_the_table_is_bounded_and_forgets_the_least_recently_active() -> None:
    bans, _, _ = table(ban_after=1, max_entries=3)
    bans.failure(A)  # banned
    for index in range(2):
        bans.failure(f"203.0.113.{index}")
    assert bans.banned(A)  # asking keeps it warm
    for index in range(1000):
        bans.failure(f"10.0.{index // 256}.{index % 256}")
        assert len(bans) <= 3
    assert not bans.banned(A)  # pushed out by a thousand newer addresses


def test_a_banned_address_asking_again_stays_remembered() -> None:
    bans, _, _ = table(ban_after=1, max_entries=2)
    bans.failure(A)
    bans.failure(B)
    assert bans.banned(A)  # A is now the most recently active
    bans.failure("203.0.113.1")  # pushes out B, not A
    assert bans.banned(A)
    assert not bans.banned(B)


def test_a_ban_from_another_node_is_kept_for_its_length_and_announced_only_if_asked() -> None:
    bans, clock, events = table()
    bans.impose(A, 30.0)
    assert bans.banned(f"::ffff:{A}") and not bans.banned(B)
    assert events == []  # the node that banned it logged the event
    clock.advance(29)
    assert bans.banned(A)
    clock.advance(1)
    assert not bans.banned(A)
    bans.impose(B, 60.0, announce=True)
    assert events == [{"event": "ban", "peer": B, "seconds": 60.0}]
