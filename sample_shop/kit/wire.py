"""Request bodies that cross more than one service boundary unchanged (the gateway validates them, then the
owning service validates them again), defined once so every hop validates them the same way."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header
from pydantic import BaseModel, ConfigDict, Field, field_validator

IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9._:-]{8,100}$"
# The checkout's `Idempotency-Key` header, declared once for the gateway and orders.
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="8..100 chars of A-Za-z0-9._:-, unique per checkout",
    ),
]
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"
MAX_LINE_QUANTITY = 99
MAX_ID = 2_147_483_647


class Registration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=6, max_length=254, pattern=EMAIL_PATTERN, examples=["ada@example.com"])
    password: str = Field(min_length=8, max_length=128, examples=["correct horse"])
    name: str = Field(min_length=1, max_length=100, examples=["Ada Lovelace"])

    @field_validator("email")
    @classmethod
    def lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("name")
    @classmethod
    def not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=1, max_length=254, examples=["ada@example.com"])
    password: str = Field(min_length=1, max_length=128, examples=["correct horse"])


class AddItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product_id: int = Field(ge=1, le=MAX_ID)
    quantity: int = Field(default=1, ge=1, le=MAX_LINE_QUANTITY)


class Card(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(
        min_length=12,
        max_length=23,
        # the server's rule, stated: 12 to 19 digits, with spaces and dashes anywhere (ignored)
        pattern=r"^[ -]*(?:[0-9][ -]*){12,19}$",
        examples=["4242424242424242"],
        description="12 to 19 digits; spaces and dashes are ignored",
    )
    expiry: str = Field(pattern=r"^(0[1-9]|1[0-2])/[0-9]{2}$", examples=["12/30"], description="MM/YY")
    cvc: str = Field(pattern=r"^[0-9]{3,4}$", examples=["123"])

    @field_validator("number")
    @classmethod
    def digits(cls, value: str) -> str:
        number = value.replace(" ", "").replace("-", "")
        if not number.isdigit() or not 12 <= len(number) <= 19:
            raise ValueError("must be 12 to 19 digits (spaces and dashes allowed)")
        return number


class CheckoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    card: Card


def _not_blank(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise ValueError("must not be blank")
    return None if value is None else value.strip()


class ProfileEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, examples=["Ada King"])

    @field_validator("name")
    @classmethod
    def not_blank(cls, value: str) -> str | None:
        return _not_blank(value)


class PasswordChange(BaseModel):
    """Lengths are loose on purpose: users answers a weak new password with its own `weak_password` code."""

    model_config = ConfigDict(extra="forbid")
    old_password: str = Field(min_length=1, max_length=128)
    new_password: str = Field(min_length=1, max_length=1024)


MAX_PRICE_CENTS = 100_000_000
MAX_STOCK = 1_000_000_000


class NewProduct(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    category: str = Field(min_length=1, max_length=50, pattern=r"^[a-z0-9-]+$")
    price_cents: int = Field(ge=1, le=MAX_PRICE_CENTS)
    stock: int = Field(ge=0, le=MAX_STOCK)
    description: str = Field(default="", max_length=2000)

    @field_validator("name")
    @classmethod
    def not_blank(cls, value: str) -> str | None:
        return _not_blank(value)


class ProductEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    price_cents: int | None = Field(default=None, ge=1, le=MAX_PRICE_CENTS)
    stock: int | None = Field(default=None, ge=0, le=MAX_STOCK)

    @field_validator("name")
    @classmethod
    def not_blank(cls, value: str | None) -> str | None:
        return _not_blank(value)


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str = Field(min_length=1, max_length=16, examples=["shipped"])
