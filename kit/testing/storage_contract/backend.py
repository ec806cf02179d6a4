"""The backend under test: an opened storage, and the means to open more on the same database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from kit.outbox.protocol import Storage
from kit.testing.storage_contract.external import ExternalFactory

StorageFactory = Callable[[], Awaitable[Storage]]


class Backend:
    """A storage under test, opened by ``async with`` and closed with every other one it opened.

    ``another`` makes a second storage object on the same database, for the races between
    connections (two flushers claiming at once, a zombie finishing late); the contract opens and
    closes what it returns. When it returns ``storage`` itself (an in-process backend, where
    every caller shares the one object), that object is used as is. Without ``another`` the
    races are skipped: an in-memory SQLite database, say, is private to its one connection.

    ``external`` opens the application's own driver connection on the same database, for
    ``enqueue_in``; without it that test is skipped.
    """

    def __init__(
        self,
        name: str,
        storage: Storage,
        *,
        another: Callable[[], Storage] | None = None,
        external: ExternalFactory | None = None,
    ) -> None:
        self.name = name
        self.storage = storage
        self.external = external
        self._another = another
        self._opened: list[Storage] = []

    @property
    def shares_database(self) -> bool:
        """Whether :meth:`open_another` can open a second storage on this database."""
        return self._another is not None

    async def open_another(self) -> Storage:
        """A second, opened storage on the same database, closed with this backend."""
        if self._another is None:
            raise RuntimeError(f"{self.name}: a second storage cannot open the same database")
        other = self._another()
        if other is self.storage:
            return other
        await other.open()
        self._opened.append(other)
        return other

    async def __aenter__(self) -> Backend:
        await self.storage.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for other in reversed(self._opened):
            await other.aclose()
        await self.storage.aclose()
