"""Test cards and card checks (pure)."""

from __future__ import annotations

from datetime import date

SUCCESS_CARD = "4242424242424242"
DECLINED_CARDS: dict[str, str] = {
    "4000000000000002": "card_declined",
    "4000000000009995": "insufficient_funds",
}


def luhn_valid(number: str) -> bool:
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def expired(expiry: str, today: date) -> bool:
    """`MM/YY`; a card is valid through the last day of its month."""
    month, year = int(expiry[:2]), 2000 + int(expiry[3:])
    return (year, month) < (today.year, today.month)
