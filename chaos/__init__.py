"""Chaos testing on real processes: warmd daemons and a redis-server on loopback, faults
injected from a seed (kills, pauses, partitions through a TCP proxy, leader transfers),
and an audit of the committed logs and the cache afterwards. Run `python -m chaos --help`."""
