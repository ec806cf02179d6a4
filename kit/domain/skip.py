"""Why something was deliberately not done: one vocabulary for adapters and the policy.

A skip is an answer, not an error: the platform gets its 2xx and the journal records the
reason, so "why did this customer get no invite?" always has a one-word answer. The values are
stored in the journal and shown by ``explain``: they never change meaning once released.
"""

from __future__ import annotations

import enum

import attrs


class SkipReason(enum.StrEnum):
    """Every reason the kit skips a delivery or a trigger; each is distinct."""

    # -- a delivery an adapter ignores on purpose
    DATA_REQUEST = "data_request"  # a compliance request to acknowledge; nothing to store
    UNSUPPORTED_TOPIC = "unsupported_topic"  # the platform sent something no rule reads
    NOT_SHIPPED = "not_shipped"  # a fulfilment that is pending, cancelled or failed
    NOT_RENEWAL = "not_renewal"  # a subscription charge that is not a renewal (the first one)
    NO_ORDER = "no_order"  # a renewal that names no order to key the invite on
    WEBHOOK_PING = "webhook_ping"  # a platform's unsigned test call when a webhook is created
    TOO_OLD = "too_old"  # a polled order placed longer ago than the source's ``max_age``
    UNREADABLE_ORDER = "unreadable_order"  # a polled order whose data the adapter refuses
    NOT_A_SUBSCRIPTION_CHARGE = "not_a_subscription_charge"  # e.g. a manual or one-off invoice
    NOTHING_PAID = "nothing_paid"  # a charge of zero (a trial, a 100 % coupon)
    UNLINKED = "unlinked"  # a refund or dispute that names no charge the kit can find

    # -- exclusions of the trigger policy
    TEST_ORDER = "test_order"
    NO_EMAIL = "no_email"
    INVALID_EMAIL = "invalid_email"
    BLOCKED_EMAIL = "blocked_email"
    GIFT_CARD_ONLY = "gift_card_only"
    EXCLUDED_ORDER_TAG = "excluded_order_tag"
    EXCLUDED_CUSTOMER_TAG = "excluded_customer_tag"
    EXCLUDED_PRODUCT = "excluded_product"
    EXCLUDED_COUNTRY = "excluded_country"
    BELOW_MINIMUM_TOTAL = "below_minimum_total"
    EXCLUDED_SALES_CHANNEL = "excluded_sales_channel"
    POINT_OF_SALE = "point_of_sale"
    OPTED_OUT = "opted_out"  # consent mode unless_opted_out
    NO_CONSENT = "no_consent"  # consent mode opted_in_only
    NO_CHANNEL = "no_channel"  # no channel configured for the order's locale
    NO_ORDER_FACTS = "no_order_facts"  # a trigger fired before any delivery described the order
    INVALID_EVENT = "invalid_event"  # the body built for the invite breaks eTrusted's rules

    # -- the renewal policy leaves this charge out
    RENEWAL_NOT_SELECTED = "renewal_not_selected"  # not the first / not an Nth renewal
    SUBSCRIPTION_TOO_YOUNG = "subscription_too_young"  # below min_subscription_age
    RENEWAL_NUMBER_UNKNOWN = "renewal_number_unknown"  # no count, no subscription to count by
    SUBSCRIPTION_RENEWAL_ORDER = "subscription_renewal_order"  # order triggers leave renewals be
    ORDER_INVITE_SENT = "order_invite_sent"  # the renewal's order already had its invite sent

    # -- the order's state rules the trigger out
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    DISPUTED = "disputed"  # the buyer disputed the charge (a chargeback)


@attrs.frozen
class Skip:
    """A deliberate "nothing to do", with its reason and an optional human-readable detail.

    The detail names the matching rule (``tag 'wholesale'``), never customer data.
    """

    reason: SkipReason
    detail: str | None = None


__all__ = ["Skip", "SkipReason"]
