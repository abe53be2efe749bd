"""Test doubles shared by several test modules."""

from __future__ import annotations


class FakeComm:
    """Stands in for a communicator where only ``Get_rank``/``Get_size`` matter (e.g. ``Grid.block``).

    ``allreduce`` (``Grid.block`` agrees on errors) returns this rank's value: no rank failed.
    """

    def __init__(self, rank: int, size: int) -> None:
        self.rank, self.size = rank, size

    def Get_rank(self) -> int:
        return self.rank

    def Get_size(self) -> int:
        return self.size

    def allreduce(self, value: object, op: object = None) -> object:
        return value
