"""The documented eTrusted EventRequest example (etrusted-api.md section 5), shared by tests.

A function, not a constant: every caller gets its own deep copy to modify.
"""

from __future__ import annotations

import copy
from typing import Any

_EXAMPLE: dict[str, Any] = {
    "type": "delivery",
    "defaultLocale": "de_DE",
    "customer": {
        "firstName": "John",
        "lastName": "Doe",
        "email": "john.doe@example.com",
        "address": "Anystr. 17, 12345, Anycity, Anystate 12345",
        "mobile": "+49123456789",
        "reference": "cus-xxxxxxxx-yyyy-xxxx-yyyy-xxxxxxxxxxxx",
    },
    "channel": {"id": "chl-xxxxxxxx-yyyy-xxxx-yyyy-xxxxxxxxxxxx", "type": "etrusted"},
    "transaction": {"reference": "order-12345", "date": "2017-01-01T13:30:15.000Z"},
    "estimatedDeliveryDate": "2017-01-07",
    "products": [
        {
            "gtin": "1234567890123",
            "imageUrl": "https://www.specialbrandshop.com/article123-TS-WH-M/image.jpg",
            "name": "Specialbrand T-Shirt White M",
            "mpn": "23687778",
            "sku": "1234-TS-WH-M",
            "brand": "specialbrand",
            "url": "https://www.specialbrandshop.com/article123-TS-WH-M/",
        }
    ],
    "system": "customer_system_name",
    "systemVersion": "1.0",
    "metadata": {"metaKey1": "metaValue1", "metaKey2": "metaValue2"},
}


def documented_event() -> dict[str, Any]:
    return copy.deepcopy(_EXAMPLE)
