"""The fixtures every part of the contract uses, derived from the ``backend`` a subclass gives."""

from __future__ import annotations

import pytest

from kit.outbox.protocol import Storage
from kit.testing.storage_contract.backend import Backend, StorageFactory


class ContractBase:
    """Needs a ``backend`` fixture (an opened :class:`Backend`) from the class that runs it."""

    pytestmark = [pytest.mark.asyncio]  # collected through the classes that inherit it

    @pytest.fixture
    def storage(self, backend: Backend) -> Storage:
        return backend.storage

    @pytest.fixture
    def storage_factory(self, backend: Backend) -> StorageFactory:
        if not backend.shares_database:
            pytest.skip(f"{backend.name}: a second storage object cannot open the same database")
        return backend.open_another
