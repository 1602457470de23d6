"""payment: charges with a lognormal latency (median SHOP_PAYMENT_MEDIAN_MS, default 40 ms; shape
SHOP_PAYMENT_SIGMA, default 0.6, so p99 is about 4x the median) and outcomes decided by the card number.

The provider is a stateless mock: a charge is identified by the order id (`ch_` + a hash of it) and the
outcome by the card, so repeating a charge returns the same charge; recent charges are also remembered per
replica so a repeat with a different amount is refused (409) instead of silently charging twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import random
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from sample_shop.kit.app import ServiceApp, ServiceContext, create_service_app, get_context, require_service
from sample_shop.kit.config import ServiceConfig, read_env_float
from sample_shop.kit.errors import ShopError
from sample_shop.kit.wire import Card
from sample_shop.payment.cards import DECLINED_CARDS, expired, luhn_valid

log = logging.getLogger("sample_shop.payment")
router = APIRouter()
Ctx = Annotated[ServiceContext, Depends(get_context)]
REMEMBERED_CHARGES = 10_000


class ChargeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    amount_cents: int = Field(ge=1, le=1_000_000_000)
    currency: str = Field(pattern=r"^[A-Z]{3}$", default="EUR")
    card: Card


class RefundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    order_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    charge_id: str = Field(min_length=1, max_length=64)
    amount_cents: int = Field(ge=1, le=1_000_000_000)


def charge_id_of(order_id: str) -> str:
    return "ch_" + hashlib.sha256(order_id.encode()).hexdigest()[:24]


class Latency:
    def __init__(self, median_ms: float, sigma: float, rng: random.Random) -> None:
        self.mu = math.log(median_ms / 1000.0)
        self.sigma = sigma
        self.rng = rng

    def sample_s(self) -> float:
        return min(self.rng.lognormvariate(self.mu, self.sigma), 10.0)


@router.post(
    dependencies=[Depends(require_service)],
    path="/charges",
    status_code=201,
    summary="charge a card for an order (idempotent per order id)",
)
async def charge(ctx: Ctx, body: ChargeRequest) -> JSONResponse:
    latency: Latency = ctx.state["latency"]
    remembered: OrderedDict[str, dict[str, Any]] = ctx.state["charges"]
    await asyncio.sleep(latency.sample_s())
    number = body.card.number
    if not luhn_valid(number):
        ctx.metrics.count_payment("invalid")
        raise ShopError(
            422, "card_invalid", "card number fails the Luhn check; test cards are in docs/shop.md"
        )
    if expired(body.card.expiry, datetime.now(UTC).date()):
        ctx.metrics.count_payment("invalid")
        raise ShopError(422, "card_invalid", f"card expired ({body.card.expiry})")
    reason = DECLINED_CARDS.get(number)
    if reason is not None:
        ctx.metrics.count_payment("declined")
        log.info(
            "charge declined",
            extra={"fields": {"event": "charge_declined", "order_id": body.order_id, "reason": reason}},
        )
        raise ShopError(402, "payment_declined", f"the card was declined: {reason}", reason=reason)
    previous = remembered.get(body.order_id)
    if previous is not None:
        if previous["amount_cents"] != body.amount_cents:
            raise ShopError(
                409,
                "charge_conflict",
                f"order {body.order_id} was already charged "
                f"{previous['amount_cents']} cents, not {body.amount_cents}",
            )
        ctx.metrics.count_payment("replayed")
        return JSONResponse({**previous, "replayed": True}, status_code=200)
    result = {
        "charge_id": charge_id_of(body.order_id),
        "status": "succeeded",
        "order_id": body.order_id,
        "amount_cents": body.amount_cents,
        "currency": body.currency,
        "card_last4": number[-4:],
    }
    remembered[body.order_id] = result
    if len(remembered) > REMEMBERED_CHARGES:
        remembered.popitem(last=False)
    ctx.metrics.count_payment("succeeded")
    log.info(
        "charge succeeded",
        extra={
            "fields": {
                "event": "charge_succeeded",
                "order_id": body.order_id,
                "amount_cents": body.amount_cents,
            }
        },
    )
    return JSONResponse(result, status_code=201)


@router.post(
    dependencies=[Depends(require_service)],
    path="/refunds",
    status_code=201,
    summary="refund an order's charge in full (idempotent per order id)",
)
async def refund(ctx: Ctx, body: RefundRequest) -> JSONResponse:
    # Stateless like the charges: the refund id follows from the order id, so a repeat returns the same one.
    latency: Latency = ctx.state["latency"]
    await asyncio.sleep(latency.sample_s())
    if body.charge_id != charge_id_of(body.order_id):
        raise ShopError(
            404, "charge_not_found", f"charge {body.charge_id} is not the charge of order {body.order_id}"
        )
    ctx.metrics.count_payment("refunded")
    log.info(
        "charge refunded",
        extra={
            "fields": {
                "event": "charge_refunded",
                "order_id": body.order_id,
                "amount_cents": body.amount_cents,
            }
        },
    )
    return JSONResponse(
        {
            "refund_id": "re_" + hashlib.sha256(body.order_id.encode()).hexdigest()[:24],
            "status": "succeeded",
            "order_id": body.order_id,
            "charge_id": body.charge_id,
            "amount_cents": body.amount_cents,
        },
        status_code=201,
    )


def create_app(config: ServiceConfig | None = None) -> ServiceApp:
    median_ms = read_env_float(os.environ, "SHOP_PAYMENT_MEDIAN_MS", 40.0, 0.1, 10_000.0)
    sigma = read_env_float(os.environ, "SHOP_PAYMENT_SIGMA", 0.6, 0.0, 3.0)
    app = create_service_app(
        "payment",
        [router],
        config=config,
        description="Mock payment provider: lognormal latency, test cards.",
    )
    app.context.state["latency"] = Latency(median_ms, max(sigma, 1e-9), random.Random())
    app.context.state["charges"] = OrderedDict()
    return app
