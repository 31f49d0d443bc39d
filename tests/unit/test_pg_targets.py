"""A libpq host list becomes one connection string a host, every other parameter kept."""

from __future__ import annotations

from psycopg2.extensions import parse_dsn

from chatire.store.pgtargets import targets


def _split(dsn: str, **environ: str) -> list[tuple[dict[str, str], str]]:
    return [(parse_dsn(t.dsn), t.name) for t in targets(dsn, environ)]


def test_one_host_is_left_as_written() -> None:
    for url in ("postgresql:///chatire", "postgresql://u@h:5433/d?options=-c%20a%3Db",
                "postgresql://%2Fvar%2Frun%2Fpostgresql/d", "postgresql://u@/d?host=/run/pg"):
        [target] = targets(url, {})
        assert target.dsn == url


def test_hosts_in_the_authority_each_with_its_port() -> None:
    url = ("postgresql://u:secret@db1:5432,db2:5433/chat?target_session_attrs=read-write"
           "&options=-c%20statement_timeout%3D5s&keepalives_idle=30")
    common = {"user": "u", "password": "secret", "dbname": "chat",
              "target_session_attrs": "read-write", "options": "-c statement_timeout=5s",
              "keepalives_idle": "30"}
    assert _split(url) == [({**common, "host": "db1", "port": "5432"}, "db1:5432"),
                           ({**common, "host": "db2", "port": "5433"}, "db2:5433")]


def test_host_and_port_lists_in_the_query() -> None:
    url = "postgresql://u@/chat?host=10.0.0.1,10.0.0.2&port=6432,5432"
    assert _split(url) == [
        ({"user": "u", "dbname": "chat", "host": "10.0.0.1", "port": "6432"}, "10.0.0.1:6432"),
        ({"user": "u", "dbname": "chat", "host": "10.0.0.2", "port": "5432"}, "10.0.0.2:5432")]


def test_one_port_serves_every_host() -> None:
    assert [p["port"] for p, _ in _split("postgresql://u@/d?host=a,b,c&port=6543")] == [
        "6543"] * 3
    assert ["port" in p for p, _ in _split("postgresql://a,b/d")] == [False, False]


def test_hostaddr_lists_pair_with_the_hosts() -> None:
    split = _split("postgresql:///d?host=a,b&hostaddr=10.0.0.1,10.0.0.2")
    assert [(p["host"], p["hostaddr"]) for p, _ in split] == [("a", "10.0.0.1"),
                                                              ("b", "10.0.0.2")]
    assert [p["hostaddr"] for p, _ in _split("postgresql:///d?hostaddr=10.0.0.1,10.0.0.2")] == [
        "10.0.0.1", "10.0.0.2"]


def test_the_host_list_of_the_environment() -> None:
    split = _split("postgresql:///d", PGHOST="a,b", PGPORT="1,2")
    assert [(p["host"], p["port"], p["dbname"]) for p, _ in split] == [("a", "1", "d"),
                                                                       ("b", "2", "d")]
    # The URL's own host wins over the environment's list.
    [target] = targets("postgresql://h/d", {"PGHOST": "a,b"})
    assert target.dsn == "postgresql://h/d"


def test_lists_libpq_would_refuse_or_read_otherwise_are_left_to_libpq() -> None:
    for url in ("postgresql://u@/d?host=a,b&port=1,2,3",   # ports do not match the hosts
                "postgresql://u@/d?host=a,,b",              # an empty item: the default host
                "postgresql://u@/d?host=a,b&hostaddr=10.0.0.1",
                "not a connection string at all"):
        [target] = targets(url, {})
        assert target.dsn == url


def test_load_balance_hosts_random_shuffles_them() -> None:
    url = "postgresql://a,b,c,d,e,f/db?load_balance_hosts=random"
    orders = {tuple(t.name for t in targets(url, {})) for _ in range(50)}
    assert len(orders) > 1
    assert all(sorted(order) == ["a", "b", "c", "d", "e", "f"] for order in orders)
    assert [t.name for t in targets(url.partition("?")[0], {})] == list("abcdef")
