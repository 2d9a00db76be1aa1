"""Faults of the API's Stripe webhook endpoint (/api/stripe/webhook, platform/api/billing_routes.py):
`secret-mismatch` (the API's signing secret was rotated, Stripe still signs with the old one), `down` (it answers
500 to everything), `insert-subscription` (a handler release inserts each event's plan row: the unique constraint
refuses it). The endpoint reads its mode from scenario.json, which control writes from the scenario's faults' `switches`
(`normal` unless one says otherwise)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Context

MODES = ("secret-mismatch", "down", "insert-subscription")


@dataclass(frozen=True)
class WebhookMode:
    mode: str

    @property
    def switches(self) -> dict[str, str]:
        return {"webhook": self.mode}

    def make(self, ctx: Context) -> None:
        pass

    def reset(self, ctx: Context) -> None:
        pass
