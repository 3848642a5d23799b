from collections import defaultdict
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quittance.domain.exchange import ConvertedAmountTooLarge, ExchangeRate, convert
from quittance.domain.fees import FeeSchedule, PayerAmountTooLarge, charge
from quittance.domain.ledger import (
    Account,
    AccountKind,
    Book,
    Entry,
    LedgerImbalance,
    Refs,
    Transaction,
    TransactionKind,
    balances,
    build_transaction,
    capture,
    charge_commission,
    exchange,
    refund,
    settle_refund,
)
from quittance.domain.money import MAX_AMOUNT

CURRENCIES = ["JPY", "EUR", "KWD", "CLF", "USD"]
K = AccountKind
BOOK = Book("mer_1", livemode=False)
amounts = st.integers(min_value=0, max_value=MAX_AMOUNT)
percents = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False)


def sums_by_currency(transaction: Transaction) -> dict[str, int]:
    sums: dict[str, int] = defaultdict(int)
    for line in transaction.entries:
        sums[line.currency] += line.amount
    return dict(sums)


def by_code(transaction: Transaction) -> dict[tuple[str, str], int]:
    return {(e.currency, e.account.code): e.amount for e in transaction.entries}


def test_capture_with_commission_taken_from_proceeds() -> None:
    split = charge(
        FeeSchedule(Decimal("2.9"), 30, None, None, "EUR"), 1999, include_commission=False
    )
    posted = capture(BOOK, split, "sandbox", Refs(invoice_id="inv_1", payment_id="pay_1"))
    assert posted.kind is TransactionKind.CAPTURE
    assert by_code(posted) == {
        ("EUR", "provider_clearing:sandbox"): 1999,
        ("EUR", "merchant_balance"): -1911,
        ("EUR", "commission_revenue"): -88,
    }
    assert (posted.refs.invoice_id, posted.refs.payment_id) == ("inv_1", "pay_1")
    assert (posted.merchant_id, posted.livemode) == ("mer_1", False)


def test_capture_with_commission_paid_on_top() -> None:
    split = charge(
        FeeSchedule(Decimal("2.9"), 30, None, None, "EUR"), 1999, include_commission=True
    )
    assert by_code(capture(BOOK, split, "ratepay")) == {
        ("EUR", "provider_clearing:ratepay"): 2087,
        ("EUR", "merchant_balance"): -1999,
        ("EUR", "commission_revenue"): -88,
    }


def test_zero_fee_capture_has_no_commission_line() -> None:
    split = charge(FeeSchedule.zero("JPY"), 1999, include_commission=False)
    assert by_code(capture(BOOK, split, "sandbox")) == {
        ("JPY", "provider_clearing:sandbox"): 1999,
        ("JPY", "merchant_balance"): -1999,
    }


def test_refunds_return_commission_as_told_and_can_wait_for_the_provider() -> None:
    full = refund(BOOK, "EUR", 1999, "sandbox", commission_returned=88)
    assert by_code(full) == {
        ("EUR", "merchant_balance"): 1911,
        ("EUR", "commission_revenue"): 88,
        ("EUR", "provider_clearing:sandbox"): -1999,
    }
    pending = refund(BOOK, "EUR", 500, "sandbox", pending=True, refs=Refs(refund_id="re_1"))
    assert by_code(pending) == {("EUR", "merchant_balance"): 500, ("EUR", "refunds_payable"): -500}
    assert pending.refs.refund_id == "re_1"
    sent = settle_refund(BOOK, "EUR", 500, "sandbox")
    assert by_code(sent) == {
        ("EUR", "refunds_payable"): 500,
        ("EUR", "provider_clearing:sandbox"): -500,
    }
    with pytest.raises(ValueError):
        refund(BOOK, "EUR", 10, "sandbox", commission_returned=11)


def test_capture_then_full_refund_leaves_every_account_at_zero() -> None:
    split = charge(
        FeeSchedule(Decimal("2.9"), 30, None, None, "EUR"), 1999, include_commission=True
    )
    posted = [
        capture(BOOK, split, "sandbox"),
        refund(BOOK, "EUR", 2087, "sandbox", commission_returned=88),
    ]
    assert set(balances(e for t in posted for e in t.entries).values()) == {0}


def test_commission_paid_on_top_goes_back_to_the_payer_beside_the_amount() -> None:
    split = charge(
        FeeSchedule(Decimal("2.9"), 30, None, None, "EUR"), 1999, include_commission=True
    )
    back = refund(BOOK, "EUR", 1999, "sandbox", commission_returned=88, on_top=True)
    assert by_code(back) == {
        ("EUR", "merchant_balance"): 1999,
        ("EUR", "commission_revenue"): 88,
        ("EUR", "provider_clearing:sandbox"): -2087,
    }
    posted = [capture(BOOK, split, "sandbox"), back]
    assert set(balances(e for t in posted for e in t.entries).values()) == {0}


def test_exchange_balances_each_currency_through_the_exchange_accounts() -> None:
    # An invoice of 19.99 EUR paid with 3203 JPY.
    conversion = convert(1999, "EUR", "JPY", ExchangeRate("EUR", "JPY", Decimal("160.25")))
    posted = exchange(BOOK, conversion, refs=Refs(invoice_id="inv_1"))
    assert by_code(posted) == {
        ("JPY", "merchant_balance"): 3203,
        ("JPY", "exchange"): -3203,
        ("EUR", "exchange"): 1999,
        ("EUR", "merchant_balance"): -1999,
    }
    assert sums_by_currency(posted) == {"JPY": 0, "EUR": 0}
    assert "rounding -0.3975" in posted.description
    reverse = exchange(BOOK, conversion, reverse=True)
    assert by_code(reverse) == {key: -amount for key, amount in by_code(posted).items()}


def test_commission_charged_on_its_own() -> None:
    assert by_code(charge_commission(BOOK, "KWD", 250)) == {
        ("KWD", "merchant_balance"): 250,
        ("KWD", "commission_revenue"): -250,
    }


def _refusal(entries: list[Entry]) -> str:
    with pytest.raises(LedgerImbalance) as caught:
        build_transaction(TransactionKind.CORRECTION, entries)
    assert caught.value.code == "ledger_unbalanced"
    return str(caught.value.extra["reason"])


def test_unbalanced_transactions_are_refused_with_a_stable_code() -> None:
    eur = BOOK.account(K.MERCHANT_BALANCE, "EUR")
    fee = BOOK.account(K.COMMISSION_REVENUE, "EUR")
    usd = BOOK.account(K.EXCHANGE, "USD")
    assert _refusal([Entry(eur, 100, "EUR"), Entry(fee, -99, "EUR")]) == "not_zero_sum"
    # Zero in total but not per currency.
    assert _refusal([Entry(eur, 100, "EUR"), Entry(usd, -100, "USD")]) == "not_zero_sum"
    assert _refusal([Entry(eur, 0, "EUR"), Entry(fee, 0, "EUR")]) == "zero_entry"
    assert _refusal([Entry(eur, 100, "EUR")]) == "too_few_entries"
    assert _refusal([]) == "too_few_entries"
    other = Book("mer_2", livemode=False).account(K.COMMISSION_REVENUE, "EUR")
    assert _refusal([Entry(eur, 100, "EUR"), Entry(other, -100, "EUR")]) == "mixed_merchants"
    live = Book("mer_1", livemode=True).account(K.COMMISSION_REVENUE, "EUR")
    assert _refusal([Entry(eur, 100, "EUR"), Entry(live, -100, "EUR")]) == "mixed_modes"
    # The check lives in the transaction itself: there is no way around it.
    with pytest.raises(LedgerImbalance) as caught:
        Transaction(TransactionKind.CORRECTION, (Entry(eur, 1, "EUR"), Entry(fee, 1, "EUR")))
    assert caught.value.extra["sums"] == {"EUR": 2}
    # A capture of nothing moves nothing, so it is not a transaction.
    with pytest.raises(LedgerImbalance):
        capture(BOOK, charge(FeeSchedule.zero("EUR"), 0, include_commission=False), "sandbox")


def test_accounts_and_entries_are_checked() -> None:
    clearing = Account("mer_1", True, "eur", K.PROVIDER_CLEARING, "sandbox")
    assert (clearing.currency, clearing.code) == ("EUR", "provider_clearing:sandbox")
    assert Account.from_code("mer_1", True, "EUR", "provider_clearing:sandbox") == clearing
    assert Account.from_code("mer_1", True, "EUR", "exchange").kind is K.EXCHANGE
    with pytest.raises(ValueError):
        Account("mer_1", True, "EUR", K.PROVIDER_CLEARING)
    with pytest.raises(ValueError):
        Account("mer_1", True, "EUR", K.PROVIDER_CLEARING, "Sand Box")
    with pytest.raises(ValueError):
        Account("mer_1", True, "EUR", K.MERCHANT_BALANCE, "sandbox")
    with pytest.raises(ValueError):
        Account("", True, "EUR", K.MERCHANT_BALANCE)
    with pytest.raises(ValueError):
        Entry(clearing, 100, "USD")
    with pytest.raises(TypeError):
        Entry(clearing, 1.5, "EUR")  # type: ignore[arg-type]


@given(
    amount=amounts,
    percent=percents,
    fixed=st.integers(0, 10**6),
    include=st.booleans(),
    currency=st.sampled_from(CURRENCIES),
)
def test_captures_and_refunds_always_balance(
    amount: int, percent: Decimal, fixed: int, include: bool, currency: str
) -> None:
    try:
        split = charge(
            FeeSchedule(percent, fixed, None, None, currency), amount, include_commission=include
        )
    except PayerAmountTooLarge:
        return
    if split.payer_amount == 0:
        return
    posted = capture(BOOK, split, "sandbox")
    assert sums_by_currency(posted) == {currency: 0}
    assert (
        balances(posted.entries)[BOOK.account(K.PROVIDER_CLEARING, currency, "sandbox")]
        == split.payer_amount
    )
    assert (
        balances(posted.entries).get(BOOK.account(K.MERCHANT_BALANCE, currency), 0)
        == -split.merchant_net
    )
    # Refund everything, returning the commission: every account ends at zero.
    back = refund(
        BOOK, currency, split.payer_amount, "sandbox", commission_returned=split.commission
    )
    assert sums_by_currency(back) == {currency: 0}
    assert set(balances([*posted.entries, *back.entries]).values()) == {0}


@given(
    amount=st.integers(1, MAX_AMOUNT),
    pair=st.lists(st.sampled_from(CURRENCIES), min_size=2, max_size=2, unique=True),
    rate=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(10**5), places=12),
    reverse=st.booleans(),
)
def test_exchanges_balance_per_currency(
    amount: int, pair: list[str], rate: Decimal, reverse: bool
) -> None:
    source, target = pair
    try:
        conversion = convert(amount, source, target, ExchangeRate(source, target, rate))
    except ConvertedAmountTooLarge:
        return
    posted = exchange(BOOK, conversion, reverse=reverse)
    sums = sums_by_currency(posted)
    assert set(sums.values()) == {0}
    assert source in sums
    assert (target in sums) == (conversion.amount_to != 0)
    totals = balances(posted.entries)
    sign = -1 if reverse else 1
    assert totals[BOOK.account(K.EXCHANGE, source)] == sign * amount
    assert totals.get(BOOK.account(K.EXCHANGE, target), 0) == -sign * conversion.amount_to


@given(
    lines=st.lists(
        st.tuples(st.sampled_from(CURRENCIES), st.integers(-MAX_AMOUNT, MAX_AMOUNT).filter(bool)),
        min_size=2,
        max_size=8,
    )
)
def test_any_entries_are_accepted_exactly_when_they_sum_to_zero_per_currency(
    lines: list[tuple[str, int]],
) -> None:
    entries = [Entry(BOOK.account(K.EXCHANGE, c), amount, c) for c, amount in lines]
    sums: dict[str, int] = defaultdict(int)
    for c, amount in lines:
        sums[c] += amount
    if set(sums.values()) == {0}:
        assert build_transaction(TransactionKind.CORRECTION, entries).entries == tuple(entries)
    else:
        assert _refusal(entries) == "not_zero_sum"
    # Closing each currency with one balancing line always makes it acceptable.
    closing = [
        Entry(BOOK.account(K.MERCHANT_BALANCE, c), -total, c) for c, total in sums.items() if total
    ]
    if len(entries) + len(closing) >= 2:
        closed = build_transaction(TransactionKind.CORRECTION, entries + closing)
        assert set(sums_by_currency(closed).values()) == {0}
